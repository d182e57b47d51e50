"""Cuts a streamed reply into speakable pieces as the tokens arrive.

The first piece is cut as early as a clause allows (a comma after a few words), or after a few
words at a word boundary that does not leave a dangling article or preposition, so speech can
start while the model is still writing; later pieces wait for longer clauses, which sound more
natural. Markdown and emoji that a small model sometimes writes are stripped before speaking.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…](?=[\"')\]]*\s)|\n")
_CLAUSE_END = re.compile(r"[,;:—](?=\s)")
# Words a spoken fragment should not end on: the listener hears them as a stumble.
_DANGLING = frozenset(
    """a an the to of and or but for in on at by with from into about as is are was were be
been am will would can could should shall may might must do does did has have had not no my your our
their his her its this that these those which who whom whose what when where how if than so very
just also i we you he she they it there here dr mr mrs ms""".split()
)
_UNSPEAKABLE = re.compile(r"[*_#`~|>\[\]{}]|[\U0001F300-\U0001FAFF\u2600-\u27BF]")


def speakable(text: str) -> str:
    return re.sub(r"\s+", " ", _UNSPEAKABLE.sub("", text)).strip()


class ClauseChunker:
    def __init__(self, first_min_words: int = 3, min_words: int = 6, first_max_words: int = 0) -> None:
        self._buffer = ""
        self._first_min_words = first_min_words
        self._first_max_words = first_max_words
        self._min_words = min_words
        self._emitted = 0

    def push(self, token: str) -> list[str]:
        """Add streamed text; returns the pieces that are complete."""
        self._buffer += token
        pieces: list[str] = []
        while (cut := self._find_cut()) is not None:
            piece, self._buffer = self._buffer[:cut], self._buffer[cut:]
            if text := speakable(piece):
                pieces.append(text)
                self._emitted += 1
        return pieces

    def flush(self) -> list[str]:
        piece, self._buffer = self._buffer, ""
        text = speakable(piece)
        return [text] if text else []

    def _find_cut(self) -> int | None:
        for match in _SENTENCE_END.finditer(self._buffer):
            if len(self._buffer[: match.end()].split()) >= 2:
                return match.end()
        min_words = self._first_min_words if self._emitted == 0 else self._min_words
        for match in _CLAUSE_END.finditer(self._buffer):
            if len(self._buffer[: match.end()].split()) >= min_words:
                return match.end()
        if self._emitted == 0 and self._first_max_words:
            return self._first_words_cut()
        return None

    def _first_words_cut(self) -> int | None:
        """End of the first ``first_max_words`` or more complete words, if the last is not dangling."""
        words = list(re.finditer(r"\S+", self._buffer))
        # the last word may still be growing unless whitespace follows it
        complete = words if self._buffer[-1:].isspace() else words[:-1]
        if len(complete) < self._first_max_words:
            return None
        for word in complete[self._first_max_words - 1 :]:
            if re.sub(r"\W", "", word.group()).lower() not in _DANGLING:
                return word.end()
        return None
