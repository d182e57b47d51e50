"""Questions about opening hours, answered from the schedule instead of the LLM's guess.

"Are you open now?", "Are you open on Saturday?", "What time do you close today?", "What are
your hours?": a short question about being open (an hours word, and at most one day or "now")
gets a sentence built from the schedule in the business's time zone, said as a fixed phrase. A
longer utterance, or one that asks something else as well, goes to the LLM, whose prompt holds the
week's hours. English only: other languages go to the LLM.
"""

from __future__ import annotations

import datetime as dt
import re

from voxline.knowledge.schedule import DAYS, Schedule, spoken_hours, spoken_time

HOURS_WORDS = re.compile(r"\b(open|opening|opened|close|closing|closed|hours|timings?|shut)\b", re.IGNORECASE)
NOW_WORDS = re.compile(r"\b(now|right now|at the moment|currently|still)\b", re.IGNORECASE)
OTHER_QUESTION = re.compile(r"\b(and|also|plus|but)\b.*\b(do|can|is|are|how|what|where|who|does)\b", re.IGNORECASE)
YES_NO = re.compile(r"^\s*(are|is|will|do|does|can)\b", re.IGNORECASE)
MAX_WORDS = 14


def _day_asked(text: str, today: dt.date) -> dt.date | str | None:
    """The day the question is about: a date, "now", "week" (no day named), or None (several)."""
    folded = text.casefold()
    named: list[dt.date] = []
    if re.search(r"\b(today|tonight|this (morning|afternoon|evening))\b", folded):
        named.append(today)
    if re.search(r"\btomorrow\b", folded):
        named.append(today + dt.timedelta(days=1))
    for index, day in enumerate(DAYS):
        if re.search(rf"\b{day}s?\b", folded):
            named.append(today + dt.timedelta(days=(index - today.weekday()) % 7))
    if len(named) > 1:
        return None
    if named:
        return named[0]
    return "now" if NOW_WORDS.search(folded) else "week"


def _when(day: dt.date, today: dt.date) -> str:
    if day == today:
        return "later today"
    if day == today + dt.timedelta(days=1):
        return "tomorrow"
    return f"on {DAYS[day.weekday()].title()}"


def answer_hours(text: str, schedule: Schedule, moment: dt.datetime | None = None) -> str | None:
    """The answer to a short question about opening hours, or None (the LLM answers)."""
    if not HOURS_WORDS.search(text) or len(text.split()) > MAX_WORDS or OTHER_QUESTION.search(text):
        return None
    now = (moment or schedule.now()).astimezone(schedule.zone)
    today = now.date()
    asked = _day_asked(text, today)
    if asked is None:
        return None
    yes, no = ("Yes, w", "No, w") if YES_NO.match(text) else ("W", "W")
    if asked == "week":
        return f"We're open {schedule.summary()}."
    if asked == "now":
        until = schedule.open_until(now)
        if until is not None:
            return f"{yes}e're open now, until {spoken_time(until)}."
        return f"{no}e're closed right now. {_next(schedule, now)}"
    assert isinstance(asked, dt.date)
    hours = schedule.hours_on(asked)
    name = "today" if asked == today else "tomorrow" if asked == today + dt.timedelta(days=1) else None
    label = name or f"on {DAYS[asked.weekday()].title()}"
    if not hours:
        later = dt.datetime.combine(asked, dt.time(23, 59), tzinfo=schedule.zone)
        return f"{no}e're closed {label}. {_next(schedule, later, today)}"
    if asked == today and now.time() >= hours[-1][1]:
        return f"Today we were open {spoken_hours(hours)}, so we're closed now. {_next(schedule, now)}"
    return f"{yes}e're open {label} from {spoken_hours(hours)}."


def _next(schedule: Schedule, after: dt.datetime, today: dt.date | None = None) -> str:
    found = schedule.next_opening(after)
    if found is None:
        return ""
    day, opens = found
    return f"We open again {_when(day, today or after.date())} at {spoken_time(opens)}."
