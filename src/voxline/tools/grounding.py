"""A check on tool calls from a small model: every number in the arguments must have been said.

Qwen 2.5 0.5B sometimes answers "Do you take walk-ins?" with a lookup of order "12345". A number
of three or more digits in an argument (an order, a phone number) that the caller never said or
typed is taken as invented, and the reply is written in words instead.
"""

from __future__ import annotations

import re
from typing import Any

from voxline.llm.base import ChatMessage
from voxline.llm.events import ToolCall

DIGIT = re.compile(r"\d")
MIN_DIGITS = 3


def caller_digits(messages: list[ChatMessage]) -> str:
    """Every digit the caller said, in order (spaces and dashes between groups dropped)."""
    return "".join(DIGIT.findall(" ".join(m["content"] for m in messages if m["role"] == "user")))


def _values(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [v for item in value.values() for v in _values(item)]
    if isinstance(value, list):
        return [v for item in value for v in _values(item)]
    return [str(value)] if isinstance(value, (str, int, float)) else []


def grounded(call: ToolCall, messages: list[ChatMessage]) -> bool:
    said = caller_digits(messages)
    for value in _values(call.arguments):
        digits = "".join(DIGIT.findall(value))
        if len(digits) >= MIN_DIGITS and digits not in said:
            return False
    return True
