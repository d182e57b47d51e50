"""Whether the caller is saying goodbye: then the agent says its own and ends the call.

Only a short utterance made of leave-taking and politeness ("Thanks, that's all, bye!",
"ठीक है, धन्यवाद, अलविदा") counts, and it must hold a word that closes a call; anything more
("bye, wait, are you open Sunday?") is answered as usual.
"""

from __future__ import annotations

from voxline.turns.completeness import words_of

CLOSING_WORDS = frozenset("bye goodbye bye-bye byebye goodnight alvida अलविदा".split())
POLITE_WORDS = frozenset(
    """
    ok okay thanks thank you that's thats that is all it so much very great good alright fine then
    have a nice day see ya later talk soon for your help cheers no nothing else bas
    lot everything i needed need wanted was take care perfect wonderful appreciate morning evening
    dhanyavaad dhanyawad dhanyavad shukriya theek thik hai achha acha ji
    धन्यवाद शुक्रिया ठीक है अच्छा जी बस और कुछ नहीं
    """.split()
)
MAX_WORDS = 10


def is_farewell(text: str) -> bool:
    words = [w.strip("-'’") for w in words_of(text)]
    words = [w for w in words if w]
    if not words or len(words) > MAX_WORDS or not any(w in CLOSING_WORDS for w in words):
        return False
    return all(w in CLOSING_WORDS or w in POLITE_WORDS for w in words)
