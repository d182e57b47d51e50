"""The conversation benchmark's data and machinery (``voxline bench conversation``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from conftest import API_TOKEN, AUTH_TOKEN
from voxline.benchmarks.conversation import Turn, judge, judge_stored, run_scenario, scenarios
from voxline.config import load_agent


def test_the_set_has_four_businesses_sixty_turns_and_a_held_out_part() -> None:
    found = scenarios()
    assert len({s.business for s in found}) >= 4
    assert sum(len(s.turns) for s in found) >= 60
    for business in {s.business for s in found}:
        assert {s.part for s in found if s.business == business} == {"tune", "held-out"}
    assert len({s.id for s in found}) == len(found)
    for scenario in found:
        load_agent(scenario.agent)  # an ordinary agent file
        for turn in scenario.turns:
            for pattern in (*turn.must, *turn.must_not):
                re.compile(pattern)
        if scenario.stored:
            agent = load_agent(scenario.agent)
            names = {t.name for t in agent.tasks} | (
                {"take_message"} if "take_message" in agent.builtin_tools else set()
            )
            assert scenario.stored["task"] in names, scenario.id


def test_a_reply_is_right_when_it_says_what_it_must_and_nothing_it_must_not() -> None:
    turn = Turn("Can I pay with a cheque?", must=(r"\bno\b|not",), must_not=(r"^\W*yes",))
    assert judge("No, we only take cash and cards.", turn) == []
    assert judge("Yes, we accept cheques.", turn) == ["missing /\\bno\\b|not/", "says /^\\W*yes/"]
    assert judge("", turn) == ["no reply"]
    events = [{"kind": "task", "details": {"task": "book_repair", "fields": {"name": "Anna", "day": "Thursday"}}}]
    assert judge_stored(events, {"task": "book_repair", "fields": {"name": "anna", "day": "thursday"}}) == []
    assert judge_stored(events, {"task": "book_repair", "fields": {"day": "friday"}}) == [
        "day is 'Thursday', not /friday/"
    ]
    assert judge_stored([], {"task": "take_message"}) == ["no take_message stored"]


@dataclass
class _Server:
    url: str
    api_token: str = API_TOKEN
    auth_token: str = AUTH_TOKEN


@pytest.mark.e2e
async def test_a_scenario_is_typed_to_the_agent_and_judged(make_server):
    (scenario,) = [s for s in scenarios() if s.id == "bike-price-tuneup"]
    server = make_server(agent_file=str(scenario.agent))
    [result] = await run_scenario(_Server(server.url), scenario, "text", None)
    assert result.heard == scenario.turns[0].say and result.reply
    assert result.right, (result.reply, result.why)
