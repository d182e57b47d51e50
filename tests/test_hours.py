"""Opening hours as a schedule: "are you open now / today / on Saturday?" answered from it in the
business's time zone, never guessed."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from conftest import AUTH_TOKEN
from voxline.config import AgentConfig, HoursSettings
from voxline.knowledge.hours_questions import answer_hours
from voxline.knowledge.schedule import parse_day, spoken_time
from voxline.simulator.caller import CallerTurn, SimulatedCall
from voxline.simulator.voices import speech_from_text

KOLKATA = ZoneInfo("Asia/Kolkata")
HOURS = HoursSettings(
    timezone="Asia/Kolkata",
    monday="09:00-18:00",
    tuesday="09:00-18:00",
    wednesday="09:00-13:00, 14:00-18:00",
    thursday="09:00-18:00",
    friday="09:00-18:00",
    saturday="10:00-14:00",
    sunday="closed",
    closed_dates=["2026-12-25"],
)
SCHEDULE = HOURS.schedule()


def at(day: str, time: str) -> dt.datetime:
    """A moment in Kolkata: ``day`` YYYY-MM-DD (2026-12-05 is a Saturday)."""
    return dt.datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=KOLKATA)


def test_hours_are_parsed_and_said_as_a_receptionist_says_them() -> None:
    assert parse_day("09:00-13:00, 14:00-18:30") == [(dt.time(9), dt.time(13)), (dt.time(14), dt.time(18, 30))]
    assert parse_day("closed") == []
    assert [spoken_time(dt.time(h, m)) for h, m in ((9, 0), (18, 30), (12, 0), (0, 30))] == [
        "9 am",
        "6:30 pm",
        "12 noon",
        "12:30 am",
    ]
    assert SCHEDULE is not None
    assert SCHEDULE.summary() == (
        "Monday and Tuesday 9 am to 6 pm, Wednesday 9 am to 1 pm and 2 pm to 6 pm, Thursday and Friday 9 am to "
        "6 pm, Saturday 10 am to 2 pm, and closed on Sunday"
    )


@pytest.mark.parametrize(
    ("question", "moment", "answer"),
    [
        ("Are you open now?", at("2026-12-05", "11:30"), "Yes, we're open now, until 2 pm."),
        (
            "Are you still open?",
            at("2026-12-05", "15:00"),
            "No, we're closed right now. We open again on Monday at 9 am.",
        ),
        (
            "Are you open on Sunday?",
            at("2026-12-05", "11:30"),
            "No, we're closed tomorrow. We open again on Monday at 9 am.",
        ),
        ("Are you open on Saturday?", at("2026-12-07", "10:00"), "Yes, we're open on Saturday from 10 am to 2 pm."),
        ("What time do you close today?", at("2026-12-07", "10:00"), "We're open today from 9 am to 6 pm."),
        (
            "Are you open today?",
            at("2026-12-07", "19:00"),
            "Today we were open 9 am to 6 pm, so we're closed now. We open again tomorrow at 9 am.",
        ),
        (
            "Are you open on Christmas, I mean Friday?",  # 2026-12-25 is a Friday: a closed date
            at("2026-12-21", "10:00"),
            "No, we're closed on Friday. We open again on Saturday at 10 am.",
        ),
        ("Are you open at the moment?", at("2026-12-09", "13:30"), None),  # lunch: see below
        (
            "What are your opening hours?",
            at("2026-12-07", "10:00"),
            "We're open Monday and Tuesday 9 am to 6 pm, Wednesday 9 am to 1 pm and 2 pm to 6 pm, Thursday and "
            "Friday 9 am to 6 pm, Saturday 10 am to 2 pm, and closed on Sunday.",
        ),
        ("Are you open on Saturday or Sunday?", at("2026-12-07", "10:00"), "unanswered"),  # two days: the LLM
        ("Are you open on Saturday and do you take walk-ins?", at("2026-12-07", "10:00"), "unanswered"),
        ("How much is a cleaning?", at("2026-12-07", "10:00"), "unanswered"),
    ],
)
def test_questions_about_the_hours_are_answered_from_the_schedule(question, moment, answer) -> None:
    assert SCHEDULE is not None
    got = answer_hours(question, SCHEDULE, moment)
    if answer == "unanswered":
        assert got is None
    elif answer is None:  # closed for lunch on Wednesday
        assert got == "No, we're closed right now. We open again later today at 2 pm."
    else:
        assert got == answer


def test_the_time_zone_is_the_businesses_not_the_servers() -> None:
    assert SCHEDULE is not None
    utc_morning = dt.datetime(2026, 12, 7, 4, 0, tzinfo=dt.UTC)  # 09:30 in Kolkata, a Monday
    assert answer_hours("Are you open now?", SCHEDULE, utc_morning) == "Yes, we're open now, until 6 pm."


@pytest.mark.parametrize(
    ("hours", "error"),
    [
        ({"timezone": "Mars/Olympus", "monday": "09:00-18:00"}, "Mars/Olympus"),
        ({"timezone": "Asia/Kolkata", "monday": "9-6"}, "hours.monday: '9-6' is not HH:MM-HH:MM"),
        ({"timezone": "Asia/Kolkata", "friday": "18:00-09:00"}, "hours.friday: .* closes before it opens"),
        ({"monday": "09:00-18:00"}, "needs its timezone"),
        ({"timezone": "Asia/Kolkata", "closed_dates": ["25/12"]}, "25/12"),
    ],
)
def test_a_malformed_schedule_names_what_is_wrong(hours: dict, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        AgentConfig.model_validate({"greeting": "Hi.", "system_prompt": "You help.", "hours": hours})


def test_the_llm_knows_the_week_too() -> None:
    agent = AgentConfig.model_validate({"greeting": "Hi.", "system_prompt": "You help.", "hours": HOURS.model_dump()})
    assert agent.system_prompt.endswith(
        "Opening hours (Asia/Kolkata time): Monday and Tuesday 9 am to 6 pm, "
        "Wednesday 9 am to 1 pm and 2 pm to 6 pm, Thursday and Friday 9 am to 6 pm, "
        "Saturday 10 am to 2 pm, and closed on Sunday."
    )
    again = AgentConfig.model_validate(agent.model_dump())
    assert again.system_prompt == agent.system_prompt  # added once


def hours_agent(tmp_path) -> str:
    text = resources.files("voxline.agents").joinpath("front_desk.toml").read_text(encoding="utf-8")
    table = "\n".join(
        f'{day} = "{getattr(HOURS, day)}"'
        for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    )
    path = tmp_path / "hours.toml"
    path.write_text(f'{text}\n[hours]\ntimezone = "Asia/Kolkata"\n{table}\n', encoding="utf-8")
    return str(path)


@pytest.mark.e2e
async def test_a_caller_asking_about_sunday_hears_the_schedule_not_a_guess(make_server, tmp_path):
    """The question is synthetic speech (the embedded TTS): no recording of it exists."""
    server = make_server(agent_file=hours_agent(tmp_path))
    result = await SimulatedCall(server.url, AUTH_TOKEN).run(
        [CallerTurn("sunday", speech_from_text("Are you open on Sunday?"))]
    )
    record = await server.wait_record_closed(result.call_sid)
    turn = record.turns[-1]
    schedule = server.services.agent.hours.schedule()
    assert turn.agent_text == answer_hours(turn.caller_text, schedule)
    assert "closed" in turn.agent_text and turn.outcome == "done"
    assert result.turns[0].latency_s is not None
