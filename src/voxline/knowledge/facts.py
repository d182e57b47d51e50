"""Yes/no questions answered from the agent's own facts, so that the reply cannot contradict them.

The 0.5B model says "Yes, we accept cheques." when the facts say "We do not accept cheques.". The
agent file's facts (the ``- …`` lines after ``Facts:`` in the system prompt) are split into
sentences; a short yes/no question is matched to them word by word (rarer words weigh more). When
exactly one sentence answers every specific word of the question, the reply is that sentence,
prefixed "Yes," or "No," by whether a negation comes before the words that matched ("We have no
vegan cheese" → "No, we have no vegan cheese."). Anything less certain (a word the facts never
use, two sentences equally close, only a verb in common) goes to the LLM.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

YES_NO = re.compile(r"^\s*(do|does|can|could|is|are|will|would|have|has|may)\b", re.IGNORECASE)
WORD = re.compile(r"[a-z0-9]+")
NEGATIONS = frozenset({"not", "no", "never", "dont", "doesnt", "cannot", "cant", "wont", "isnt", "arent", "nor"})
STOPWORDS = frozenset(
    """
    a an the and or of to in on at for with by from about is are am be been was were do does did can could
    will would may might shall should have has had i you we us our your my me it its this that these those
    there here they them their he she his her please just also any some anything something get got
    if so then than as up out into over under very really still yet much many how what when where which who
    why whether one ones lot lots okay ok hi hello yes no not
    """.split()
)
# Verbs that alone do not say what the question is about ("Do you accept pet insurance?" shares
# only "accept" with "we accept cards only").
GENERIC_VERBS = frozenset(
    """
    accept take have get make do offer serve see treat repair fix sell book pay need want give come bring
    like use go buy let help work call tell know say ask find keep put
    """.split()
)
MAX_QUESTION_WORDS = 14
MIN_SCORE = 1.0


def stem(word: str) -> str:
    """Plural to singular, roughly: cheques → cheque, boxes → box, puppies → puppy."""
    word = word.lower().strip("'")
    if len(word) <= 3:
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


IGNORED = STOPWORDS | {stem(word) for word in STOPWORDS}  # as a question's words are compared: stemmed


def words(text: str) -> list[str]:
    return WORD.findall(text.lower().replace("'", "").replace("’", ""))


@dataclass(frozen=True)
class Fact:
    text: str
    tokens: tuple[str, ...]  # stemmed, in order (negations kept)


class FactBook:
    def __init__(self, sentences: list[str]) -> None:
        self.facts = [Fact(s, tuple(stem(w) for w in words(s))) for s in sentences]
        counts: dict[str, int] = {}
        for fact in self.facts:
            for token in set(fact.tokens):
                counts[token] = counts.get(token, 0) + 1
        total = max(1, len(self.facts))
        self._idf = {token: math.log((total + 1) / count) for token, count in counts.items()}

    @classmethod
    def from_prompt(cls, system_prompt: str) -> FactBook:
        """The ``- …`` lines after ``Facts:``, one sentence each (split at full stops)."""
        _, found, after = system_prompt.partition("Facts:")
        lines = [line.strip()[2:] for line in after.splitlines() if found and line.strip().startswith("- ")]
        sentences = [s.strip() for line in lines for s in re.split(r"(?<=\.)\s+", line) if s.strip()]
        return cls([s if s.endswith((".", "!", "?")) else s + "." for s in sentences])

    def answer(self, question: str) -> str | None:
        """The facts' own answer to a short yes/no question, or None (the LLM answers)."""
        if not YES_NO.match(question) or len(question.split()) > MAX_QUESTION_WORDS:
            return None
        asked = {stem(w) for w in words(question)} - IGNORED
        specific = asked - GENERIC_VERBS
        if not specific or any(word not in self._idf for word in specific):
            return None  # a word the facts never use: they may not cover it
        scored = sorted(
            ((sum(self._idf[w] for w in asked if w in fact.tokens), index) for index, fact in enumerate(self.facts)),
            reverse=True,
        )
        (best, index), second = scored[0], scored[1][0] if len(scored) > 1 else 0.0
        fact = self.facts[index]
        if best < MIN_SCORE or best - second < 0.5 or not specific <= set(fact.tokens):
            return None
        first_match = min(fact.tokens.index(w) for w in specific)
        negative = any(token in NEGATIONS for token in fact.tokens[:first_match])
        first = fact.text.split(" ", 1)[0]
        sentence = fact.text[0].lower() + fact.text[1:] if first.lower() in STOPWORDS | {"every"} else fact.text
        return f"{'No' if negative else 'Yes'}, {sentence}"
