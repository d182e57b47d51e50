"""What Sarvam's speech-to-text and text-to-speech APIs share."""

from __future__ import annotations


def sarvam_language(code: str) -> str:
    """Sarvam's BCP-47 codes: 'hi' → 'hi-IN'; an empty code asks it to detect the language."""
    if not code:
        return "unknown"
    return code if "-" in code else f"{code}-IN"
