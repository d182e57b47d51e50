"""Cuts a streamed reply into speakable pieces as the tokens arrive.

The first piece is cut as early as a clause allows (a comma after a few words), so speech can
start while the model is still writing; later pieces wait for longer clauses, which sound more
natural. Markdown and emoji that a small model sometimes writes are stripped before speaking.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…](?=[\"')\]]*\s)|\n")
_CLAUSE_END = re.compile(r"[,;:—](?=\s)")
_UNSPEAKABLE = re.compile(r"[*_#`~|>\[\]{}]|[\U0001F300-\U0001FAFF\u2600-\u27BF]")


def speakable(text: str) -> str:
    return re.sub(r"\s+", " ", _UNSPEAKABLE.sub("", text)).strip()


class ClauseChunker:
    def __init__(self, first_min_words: int = 3, min_words: int = 6) -> None:
        self._buffer = ""
        self._first_min_words = first_min_words
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
        return None
