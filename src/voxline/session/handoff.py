"""Whether the caller asks for a person: then the agent hands the call over (if its agent file
names someone to take it).

A request names a person ("a human", "someone", "the receptionist", "a real person") with a verb
of talking or connecting ("speak to", "talk to", "transfer me", "put me through", "connect me"),
or is the bare "operator" / "representative" / "agent, please"; Hindi: "kisi insaan se baat".
"""

from __future__ import annotations

import re

from voxline.turns.completeness import words_of

_ASK = r"(?:speak|talk|transfer|connect|put me through|get me)"
_PERSON = (
    r"(?:a |an |the |to |with |some )*(?:human|person|someone|somebody|real person|live person|receptionist|"
    r"operator|representative|agent|staff|colleague|manager|doctor|people)"
)
_REQUEST = re.compile(rf"\b{_ASK}\b(?:\W+\w+){{0,4}}?\W+{_PERSON}\b")
_ALONE = frozenset("operator representative human receptionist".split())
_HINDI = re.compile(r"(?:insaan|इंसान|aadmi|आदमी|kisi vyakti|किसी व्यक्ति)\s+se\s+baat|(?:इंसान|आदमी) से बात")


def wants_a_person(text: str) -> bool:
    lowered = " ".join(words_of(text))
    if not lowered:
        return False
    words = lowered.split()
    if len(words) <= 3 and any(w in _ALONE for w in words):
        return True
    return bool(_REQUEST.search(lowered) or _HINDI.search(lowered))
