"""Errors shared by every provider."""

from __future__ import annotations


class ProviderError(RuntimeError):
    """A hosted provider failed; ``kind`` is the HTTP status or the failure's name."""

    def __init__(self, provider: str, kind: str, message: str) -> None:
        super().__init__(f"{provider}: {kind}: {message}")
        self.provider = provider
        self.kind = kind
