"""Keypad input: menus, numbers the agent asks for (length, end key, timeout), digits as words."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
from pydantic import ValidationError

from conftest import ACCOUNT_SID, AUTH_TOKEN
from voxline.config import AgentConfig, KeypadSettings
from voxline.fakes.twilio_server import FakeTwilioRest
from voxline.session.keypad import Entry, Keypad, LanguageKey
from voxline.simulator.caller import CallerTurn, SimulatedCall

ORDERS = KeypadSettings.model_validate(
    {
        "timeout_s": 2.0,
        "menu": {"0": "I would like to speak to a person."},
        "collect": [{"name": "order number", "ask": ["order number"], "min_digits": 6, "max_digits": 8}],
    }
)


def press(keypad: Keypad, keys: str, at: float = 0.0) -> list[object]:
    return [outcome for key in keys if (outcome := keypad.press(key, at)) is not None]


def test_a_menu_key_acts_at_once_and_a_language_key_picks_the_language() -> None:
    keypad = Keypad(ORDERS, {"2": "hi"})
    assert press(keypad, "0") == [Entry("0", "I would like to speak to a person.", "menu")]
    assert press(keypad, "2") == [LanguageKey("hi")]
    assert keypad.deadline is None


def test_other_keys_end_at_the_end_key_or_after_the_timeout() -> None:
    keypad = Keypad(ORDERS, {})
    assert press(keypad, "42#") == [Entry("42", "I typed 42 on my keypad.")]
    assert press(keypad, "#") == []  # the end key alone ends nothing
    assert press(keypad, "17", at=10.0) == []
    assert keypad.deadline == 12.0
    assert keypad.expire(11.9) is None
    assert keypad.expire(12.0) == Entry("17", "I typed 17 on my keypad.")
    assert keypad.deadline is None


def test_a_number_the_agent_asked_for_is_checked_and_named() -> None:
    keypad = Keypad(ORDERS, {"2": "hi"})
    keypad.agent_said("Sure. Please type your Order Number, then press the hash key.")
    assert keypad.collecting == "order number"
    # While the number is awaited, menu and language keys are digits of it.
    short = press(keypad, "02#")
    assert short == [
        Entry(
            "02",
            "Sorry, that order number doesn't look right. Please type it again, then press the hash key.",
            "order number",
            valid=False,
        )
    ]
    assert keypad.collecting == "order number"  # still awaited
    assert press(keypad, "123456#") == [Entry("123456", "My order number is 123456.", "order number")]
    assert keypad.collecting == ""
    keypad.agent_said("What is your order number?")
    assert press(keypad, "12345678") == [Entry("12345678", "My order number is 12345678.", "order number")]
    keypad.agent_said("What is your order number?")
    keypad.caller_spoke()  # said it instead
    assert press(keypad, "0") == [Entry("0", "I would like to speak to a person.", "menu")]
    keypad.agent_said("Type your order number, or press 0 for a person.")
    assert press(keypad, "0") == []  # perhaps the first digit of the number
    assert keypad.expire(5.0) == Entry("0", "I would like to speak to a person.", "menu")
    assert keypad.collecting == ""


@pytest.mark.parametrize(
    ("keypad", "error"),
    [
        ({"menu": {"12": "x"}}, "not one key"),
        ({"menu": {"#": "x"}}, "is the terminator"),
        ({"terminator": "x"}, "terminator must be one key"),
        ({"said": "I typed {number}."}, "only {digits}"),
        ({"collect": [{"name": "pin", "ask": ["pin"], "min_digits": 6, "max_digits": 4}]}, "min_digits is more"),
    ],
)
def test_a_malformed_keypad_section_names_what_is_wrong(keypad: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        AgentConfig.model_validate({"greeting": "Hi.", "system_prompt": "You help.", "keypad": keypad})


def test_a_language_key_cannot_also_be_a_menu_key() -> None:
    with pytest.raises(ValidationError, match="picks language"):
        AgentConfig.model_validate(
            {
                "greeting": "Hi.",
                "system_prompt": "You help.",
                "languages": {"hi": {"name": "Hindi", "stt_language": "hi", "dtmf": "2", "confirmation": "ok"}},
                "keypad": {"menu": {"2": "Hindi"}},
            }
        )


def keypad_agent(tmp_path) -> str:
    text = resources.files("voxline.agents").joinpath("front_desk.toml").read_text(encoding="utf-8")
    text = text.replace(
        text[text.index("greeting = ") : text.index("\n", text.index("greeting = "))],
        'greeting = "Thanks for calling. To check an order, type your order number, then press the hash key. '
        'To speak to a person, press 0."',
    )
    path = tmp_path / "keypad.toml"
    path.write_text(
        text
        + """
[transfer]
number = "+15005550009"

[keypad]
timeout_s = 1.5
menu = { "0" = "I would like to speak to a person." }

[[keypad.collect]]
name = "order number"
ask = ["order number"]
min_digits = 6
max_digits = 8
""",
        encoding="utf-8",
    )
    return str(path)


KEYS = np.zeros(0, np.int16)  # keys pressed, nothing said


async def test_a_typed_order_number_reaches_the_agent_as_words(make_server, tmp_path):
    server = make_server(agent_file=keypad_agent(tmp_path))
    turns = [
        CallerTurn("too short", KEYS, dtmf="123#"),
        CallerTurn("order number", KEYS, dtmf="48213377#"),
        CallerTurn("no end key", KEYS, dtmf="55"),
    ]
    result = await SimulatedCall(server.url, AUTH_TOKEN).run(turns)
    record = await server.wait_record_closed(result.call_sid)
    entries = [(e["digits"], e["name"], e["valid"]) for e in record.events if e["kind"] == "keypad"]
    assert entries == [("123", "order number", False), ("48213377", "order number", True), ("55", "", True)]
    said = [t.agent_text for t in record.turns]
    assert "that order number doesn't look right" in said[0]
    assert [t.caller_text for t in record.turns if t.kind == "answer"] == [
        "My order number is 48213377.",
        "I typed 55 on my keypad.",
    ]
    answers = [t for t in record.turns if t.kind == "answer"]
    assert all(t.agent_text and t.outcome == "done" for t in answers)  # the agent answered each in words
    assert all(r.reply_audible_at is not None for r in result.turns)
    # The entry without the end key ended by its timeout, not before.
    assert result.turns[2].latency_s is not None and result.turns[2].latency_s >= 1.5


async def test_a_menu_key_can_hand_the_caller_to_a_person(make_server, tmp_path):
    async with FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        server = make_server(twilio_api_base_url=twilio.url, agent_file=keypad_agent(tmp_path))
        call = SimulatedCall(server.url, AUTH_TOKEN)
        twilio.add_call(call.call_sid)
        twilio.on_redirect = lambda _sid, _twiml: call.end_call()
        result = await call.run([CallerTurn("press 0", KEYS, dtmf="0")])
        record = await server.wait_record_closed(result.call_sid)
    assert record.outcome == "transferred"
    assert "<Number>+15005550009</Number>" in twilio.requests[-1].params["Twiml"]
    assert record.turns[0].caller_text == "I would like to speak to a person."
