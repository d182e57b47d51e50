"""Opening hours as a weekly schedule in the business's time zone, and what they say about a
moment: open now and until when, open on a given day, when it opens next.

``"09:00-18:00"``, ``"09:00-13:00, 14:00-18:00"`` or ``"closed"`` per weekday, and dates that
are closed (holidays). Times are said the way a receptionist says them: "9 am", "6:30 pm".
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

Hours = tuple[dt.time, dt.time]


def parse_day(text: str) -> list[Hours]:
    """``"09:00-13:00, 14:00-18:00"`` → two ranges; ``"closed"`` or ``""`` → none."""
    if text.strip().lower() in ("", "closed"):
        return []
    ranges = []
    for part in text.split(","):
        match = RANGE.match(part)
        if not match:
            raise ValueError(f"{part.strip()!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h2 == 24 and m2 == 0:
            h2, m2 = 23, 59
        opens, closes = dt.time(h1, m1), dt.time(h2, m2)
        if closes <= opens:
            raise ValueError(f"{part.strip()!r} closes before it opens")
        ranges.append((opens, closes))
    return sorted(ranges)


def spoken_time(time: dt.time) -> str:
    """9:00 → "9 am", 18:30 → "6:30 pm", 12:00 → "12 noon", 23:59 → "midnight"."""
    if (time.hour, time.minute) == (12, 0):
        return "12 noon"
    if (time.hour, time.minute) in ((0, 0), (23, 59)):
        return "midnight"
    hour = time.hour % 12 or 12
    minutes = f":{time.minute:02d}" if time.minute else ""
    return f"{hour}{minutes} {'am' if time.hour < 12 else 'pm'}"


def spoken_hours(hours: list[Hours]) -> str:
    return " and ".join(f"{spoken_time(a)} to {spoken_time(b)}" for a, b in hours)


@dataclass(frozen=True)
class Schedule:
    zone: ZoneInfo
    week: tuple[list[Hours], ...]  # Monday first
    closed_dates: frozenset[dt.date] = frozenset()

    def now(self) -> dt.datetime:
        return dt.datetime.now(self.zone)

    def hours_on(self, day: dt.date) -> list[Hours]:
        return [] if day in self.closed_dates else self.week[day.weekday()]

    def open_until(self, moment: dt.datetime) -> dt.time | None:
        """When it closes, if it is open at ``moment`` (local time); None if closed."""
        local = moment.astimezone(self.zone)
        for opens, closes in self.hours_on(local.date()):
            if opens <= local.time() < closes:
                return closes
        return None

    def next_opening(self, moment: dt.datetime) -> tuple[dt.date, dt.time] | None:
        """The next time it opens after ``moment`` (within two weeks)."""
        local = moment.astimezone(self.zone)
        for ahead in range(15):
            day = local.date() + dt.timedelta(days=ahead)
            for opens, _ in self.hours_on(day):
                if ahead or opens > local.time():
                    return day, opens
        return None

    def summary(self) -> str:
        """The week in one sentence: "Monday to Friday 9 am to 6 pm, Saturday 10 am to 2 pm, and
        closed on Sunday"."""
        groups: list[tuple[int, int, list[Hours]]] = []
        for index, hours in enumerate(self.week):
            if groups and groups[-1][2] == hours:
                groups[-1] = (groups[-1][0], index, hours)
            else:
                groups.append((index, index, hours))
        parts = []
        for first, last, hours in groups:
            if first == last:
                days = DAYS[first].title()
            elif last == first + 1:
                days = f"{DAYS[first].title()} and {DAYS[last].title()}"
            else:
                days = f"{DAYS[first].title()} to {DAYS[last].title()}"
            if hours:
                parts.append(f"{days} {spoken_hours(hours)}")
            else:
                parts.append(f"closed {'from' if last > first + 1 else 'on'} {days}")
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", and " + parts[-1]


def schedule_of(timezone: str, week: list[str], closed_dates: list[str]) -> Schedule | None:
    """The agent file's ``[hours]`` (each weekday's text, Monday first) as a schedule; None
    without a time zone."""
    if not timezone:
        return None
    return Schedule(
        ZoneInfo(timezone),
        tuple(parse_day(text) for text in week),
        frozenset(dt.date.fromisoformat(d) for d in closed_dates),
    )
