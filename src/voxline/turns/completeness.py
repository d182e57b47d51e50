"""Does what the caller said so far sound finished? Judged from the early transcript's last words.

A pause means different things after "what time do you open?" and after "my number is four one
five": the first is a finished question, the second a caller reading out digits. The early
transcript (ready a few hundred milliseconds into a pause) tells them apart well enough to choose
how much more silence ends the turn: short after a question, longer after a plain statement,
longest after a trailing "and", "the", "um", a comma or an unfinished number.

The rules are plain text rules, in English and in romanised and Devanagari Hindi, because they
must run in microseconds on every pause and be explainable when they are wrong.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Ending(StrEnum):
    EMPTY = "empty"  # no words were recognised
    QUESTION = "question"  # ends with a question mark, or opens like one
    COMPLETE = "complete"  # a sentence with a full stop or an exclamation mark
    UNSURE = "unsure"  # no punctuation to go by
    INCOMPLETE = "incomplete"  # a trailing conjunction, article, filler, comma or unfinished number


# Words after which an English or Hindi sentence cannot end (conjunctions, prepositions, articles,
# possessives, auxiliaries, fillers, and Hindi postpositions and conjunctions).
TRAILING_WORDS = frozenset(
    """
    and or but so because if then than that which who whose whom when while although though unless
    until since as like of to for with at in on from by about into onto over under after before
    between through without within the a an my your our their his her its this these those some any
    is are was were am be been being do does did have has had will would can could should shall may
    might must i we he she they um uh er erm ah plus nor
    aur ya lekin ki ke ka ko se mein par toh to bhi jo agar kyunki matlab woh yeh hai tha
    और या लेकिन कि के का की को से में पर तो भी जो अगर क्योंकि मतलब
    """.split()
)
QUESTION_OPENERS = frozenset(
    "what when where who whom whose which why how can could do does did is are was were will would "
    "should shall may might have has am kya kab kahan kaun kyun kaise kitna kitne".split()
)
NUMBER_WORDS = {
    "zero": "0",
    "oh": "0",
    "o": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
FULL_NUMBER_DIGITS = 10  # a phone number with its area code: fewer digits at the end is a number still being read
_WORD = re.compile(r"[^\s.,!?;:।…\"“”()]+")  # (Devanagari vowel signs are not \w: split on the rest)
_TRAILING_MARKS = ",;:-–—…"


def words_of(text: str) -> list[str]:
    """The words of a transcript, case-folded, without punctuation (Latin and Devanagari)."""
    return [w.casefold() for w in _WORD.findall(text)]


def judge(text: str) -> Ending:
    """How the transcript ends. ``text`` is the speech-to-text result, punctuation included."""
    stripped = text.strip().strip('"“”')
    words = words_of(stripped)
    if not words:
        return Ending.EMPTY
    if stripped.endswith(("...", "…")) or stripped[-1] in _TRAILING_MARKS:
        return Ending.INCOMPLETE
    if _reading_a_number(words):
        return Ending.INCOMPLETE
    if words[-1].strip("-'’") in TRAILING_WORDS:
        return Ending.INCOMPLETE
    if stripped.endswith("?"):
        return Ending.QUESTION
    if stripped[-1] in ".!।":
        return Ending.QUESTION if words[0] in QUESTION_OPENERS else Ending.COMPLETE
    return Ending.UNSURE


def _reading_a_number(words: list[str]) -> bool:
    """The text ends in a run of digits shorter than a full phone number ("four one five", "415-555")."""
    digits = 0
    for word in reversed(words):
        parts = [p for p in re.split(r"[-'’]", word) if p]
        if not parts or not all(p.isdigit() or p in NUMBER_WORDS for p in parts):
            break
        digits += sum(len(p) if p.isdigit() else 1 for p in parts)
    return 0 < digits < FULL_NUMBER_DIGITS
