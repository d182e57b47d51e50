"""What a short utterance over the agent was: a backchannel, no words at all, or the caller's turn.

"Mm-hmm", "okay", "haan" while the agent talks tell it to go on; a cough or a door has no words,
and neither has a lone hesitation sound ("um", "er": speech recognisers write a hummed "hmm" so);
anything else ("wait", "no, Tuesday") takes the turn. The words come from the utterance's
transcript, so a short "no" interrupts while a longer "yeah, okay" does not.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from voxline.turns.completeness import words_of

# Hesitation sounds, not words: alone they carry nothing for the agent to answer.
FILLERS = frozenset("um umm uh uhh er erm em eh ehm".split())


class OverlapKind(StrEnum):
    BACKCHANNEL = "backchannel"  # the listener's acknowledgement: the agent goes on
    NOISE = "false-interruption"  # no words (a cough, a door, the line): the agent goes on
    SPEECH = "speech"  # words that take the turn


def classify_overlap(text: str, backchannels: Iterable[str]) -> OverlapKind:
    words = [w for w in (w.strip("-'’") for w in words_of(text)) if w and w not in FILLERS]
    if not words:
        return OverlapKind.NOISE
    known = {b.casefold() for b in backchannels}
    if all(w in known for w in words) and len(words) <= 4:
        return OverlapKind.BACKCHANNEL
    return OverlapKind.SPEECH
