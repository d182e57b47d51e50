"""Keys the caller presses, gathered into what they mean: a menu choice, a language, a number.

Keys arrive one ``dtmf`` event at a time. A menu key or a language key pressed on its own acts at
once (an IVR menu is not kept waiting); other keys are gathered into an entry that ends at the
terminator (``#``), at the most digits allowed, or ``timeout_s`` after the last key. When the agent
has just asked for a number it knows (``[[keypad.collect]]``: its reply said one of the ``ask``
words), the entry is that number: checked for length, then handed to the agent as the caller's
words ("My order number is 123456."), or the agent says ``invalid`` and waits for it again. While
a number is awaited, a menu key is a digit of it, unless it is all that was typed (and too short
for the number): then it is the menu choice, once the entry ends.

Pure state with the time passed in: the session owns the timer and what each outcome does.
"""

from __future__ import annotations

from dataclasses import dataclass

from voxline.config import KeypadCollection, KeypadSettings


@dataclass(frozen=True)
class LanguageKey:
    """A language's key, pressed on its own."""

    language: str


@dataclass(frozen=True)
class Entry:
    """A finished entry: ``text`` is what the agent hears from the caller, or (``valid`` False)
    what the agent says back before waiting for the number again."""

    digits: str
    text: str
    name: str = ""  # the collection it was for, or "menu", or "" for keys the agent file does not name
    valid: bool = True


KeypadOutcome = LanguageKey | Entry


class Keypad:
    def __init__(self, settings: KeypadSettings, language_keys: dict[str, str]) -> None:
        self._settings = settings
        self._language_keys = language_keys  # key -> language code
        self._buffer = ""
        self._last_key_at = 0.0
        self._collecting: KeypadCollection | None = None

    @property
    def collecting(self) -> str:
        """The number the agent is waiting for ('' : none)."""
        return self._collecting.name if self._collecting else ""

    @property
    def deadline(self) -> float | None:
        """When the entry being typed ends by itself (None: nothing is being typed)."""
        return self._last_key_at + self._settings.timeout_s if self._buffer else None

    def agent_said(self, text: str) -> None:
        """The agent's words: if they ask for a number the agent file knows, the next entry is it."""
        folded = text.casefold()
        for collection in self._settings.collect:
            if any(word.casefold() in folded for word in collection.ask):
                self._collecting = collection
                return

    def caller_spoke(self) -> None:
        """The caller answered in words instead: the number is no longer awaited."""
        self._collecting = None

    def press(self, key: str, now: float) -> KeypadOutcome | None:
        """One key; an outcome when it finishes something."""
        if not self._buffer and self._collecting is None:
            if key in self._language_keys:
                return LanguageKey(self._language_keys[key])
            if key in self._settings.menu:
                return Entry(key, self._settings.menu[key], "menu")
        if key == self._settings.terminator:
            return self._finish() if self._buffer else None
        self._buffer += key
        self._last_key_at = now
        limit = self._collecting.max_digits if self._collecting else self._settings.max_digits
        return self._finish() if len(self._buffer) >= limit else None

    def expire(self, now: float) -> Entry | None:
        """The entry if its time is up (called by the session's timer)."""
        deadline = self.deadline
        return self._finish() if deadline is not None and now >= deadline else None

    def _finish(self) -> Entry:
        digits, self._buffer = self._buffer, ""
        collection = self._collecting
        if collection is None:
            return Entry(digits, self._settings.said.format(digits=digits))
        if not collection.min_digits <= len(digits) <= collection.max_digits:
            if digits in self._settings.menu:  # one menu key, too short for the number: the menu choice
                self._collecting = None
                return Entry(digits, self._settings.menu[digits], "menu")
            return Entry(digits, collection.invalid.format(name=collection.name), collection.name, valid=False)
        self._collecting = None
        return Entry(digits, collection.said.format(name=collection.name, digits=digits), collection.name)
