"""Does the embedded LLM call the right tool? Tool choice on the packaged front desk.

What it measures
    Qwen 2.5 0.5B, loaded as the server loads it (``LlamaChat``, 2 threads, the system prompt and
    the tools pre-evaluated by ``warm_up``), is offered the front desk's facts plus three tools
    (an ``order_status`` lookup, the built-in ``end_call`` and ``take_message``) in its chat
    template, and asked labelled caller sentences, one fresh conversation each. For each: which
    tool it called (or words), whether the arguments carry the caller's numbers, and the time to
    the decision (first word, or the whole tool call). It is scored twice: as the model answered,
    and after Voxline's check that a tool call's numbers were said by the caller (a call that
    fails it is answered in words instead; ``end_call`` only after a goodbye:
``voxline.session.tool_use.believable``).

The set is split: ``tune`` are the sentences the check was designed on (and whose results were
looked at while designing it), ``held-out`` were written afterwards and never used to change
anything. Text only (no speech): this isolates the LLM.

Run it with ``.venv/bin/python bench/tool_calls.py`` (about a minute on two cores); it prints a
table and writes ``bench/results/tool_calls.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from voxline.benchmarks.report import machine
from voxline.config import AgentConfig, Settings, load_agent
from voxline.engine import files
from voxline.llm.base import ChatMessage
from voxline.llm.events import TextDelta, ToolCall
from voxline.llm.llama import LlamaChat
from voxline.providers.pool import ModelPool
from voxline.session.tool_use import believable
from voxline.tools.definitions import tool_definitions

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "tool_calls.json"

# (part, sentence, the tool it should call or None for words, the argument value it must carry)
CASES: list[tuple[str, str, str | None, str]] = [
    ("tune", "My order number is 48213377.", "order_status", "48213377"),
    ("tune", "Where is my order? The number is 48213377.", "order_status", "48213377"),
    ("tune", "Can you check order 5512 for me?", "order_status", "5512"),
    ("tune", "What are your opening hours?", None, ""),
    ("tune", "Do you take walk-ins?", None, ""),
    ("tune", "How much is a cleaning?", None, ""),
    ("tune", "Can I leave a message for Dr. Shah? I'm John, 555 0199, please call me back.", "take_message", "5550199"),
    ("tune", "That's all, thank you, goodbye.", "end_call", ""),
    ("tune", "Hi, I'd like to know where my package is, order 77120934.", "order_status", "77120934"),
    ("tune", "Could you look up order number 330918 for me?", "order_status", "330918"),
    ("tune", "My order is 99887766, has it shipped yet?", "order_status", "99887766"),
    ("tune", "Are you open on Sunday?", None, ""),
    ("tune", "Which dentists work there?", None, ""),
    ("tune", "Is there parking nearby?", None, ""),
    ("tune", "Do you have an emergency number?", None, ""),
    ("tune", "What does a check-up cost?", None, ""),
    (
        "tune",
        "I need to move my appointment, can someone call me back? This is Priya, 415 555 0134.",
        "take_message",
        "4155550134",
    ),
    ("tune", "Please tell Dr. Becker that Maria called, my number is 650 555 0199.", "take_message", "6505550199"),
    ("tune", "Okay great, that's all I needed, bye.", "end_call", ""),
    ("tune", "No thanks, goodbye.", "end_call", ""),
    # Written after the check was last changed; never used to change anything.
    ("held-out", "Can you tell me the status of order 55012398?", "order_status", "55012398"),
    ("held-out", "I ordered something last week, order 61 44 20, where is it?", "order_status", "614420"),
    ("held-out", "Has order number 800123 been delivered?", "order_status", "800123"),
    ("held-out", "Do you do teeth whitening?", None, ""),
    ("held-out", "What's your address?", None, ""),
    ("held-out", "Can I pay by card?", None, ""),
    ("held-out", "How long does a check-up take?", None, ""),
    ("held-out", "Is Dr. Shah in on Fridays?", None, ""),
    (
        "held-out",
        "I'd like someone to call me back about a bill, I'm Ahmed, 212 555 0187.",
        "take_message",
        "2125550187",
    ),
    (
        "held-out",
        "Could you pass on a message to Dr. Becker? It's Lena, 312 555 0145, my crown came loose.",
        "take_message",
        "3125550145",
    ),
    ("held-out", "Thanks a lot, bye bye.", "end_call", ""),
    ("held-out", "Alright, that's everything, have a good day, goodbye.", "end_call", ""),
]


def agent_with_tools() -> AgentConfig:
    front_desk = load_agent(None)
    lookup = {
        "name": "order_status",
        "description": "Look up where a customer's order is, by its order number.",
        "parameters": {
            "type": "object",
            "properties": {"order_number": {"type": "string", "description": "The order number, digits only."}},
            "required": ["order_number"],
        },
        "url": "https://orders.example.com/status",
    }
    return AgentConfig.model_validate(
        {**front_desk.model_dump(), "tools": [lookup], "builtin_tools": ["end_call", "take_message"]}
    )


async def ask(llm: LlamaChat, messages: list[ChatMessage], tools) -> tuple[str | None, dict, float, str]:
    """(tool called or None, its arguments, seconds to the decision, the words)."""
    started = time.perf_counter()
    decided = 0.0
    words, calls = "", []
    async for event in llm.stream(messages, 80, 0.0, tools):
        if isinstance(event, TextDelta) and event.text.strip() and not decided:
            decided = time.perf_counter() - started
        if isinstance(event, TextDelta):
            words += event.text
        elif isinstance(event, ToolCall):
            decided = decided or time.perf_counter() - started
            calls.append(event)
    if calls:
        return calls[0].name, calls[0].arguments, decided, words
    return None, {}, decided, words


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


async def main(out: Path) -> None:
    settings = Settings()
    agent = agent_with_tools()
    tools = tool_definitions(agent)
    pool = ModelPool(1)
    llm = LlamaChat("qwen2.5-0.5b", files.llm_gguf("qwen2.5-0.5b", settings.cache_dir), pool, 2, 2048)
    llm.warm_up(agent.system_prompt, tools)
    rows = []
    for part, text, want, value in CASES:
        messages: list[ChatMessage] = [
            {"role": "system", "content": agent.system_prompt},
            {"role": "user", "content": text},
        ]
        name, arguments, seconds, words = await ask(llm, messages, tools)
        kept = name is not None and believable(ToolCall("1", name, arguments), messages)
        checked = name if kept else None
        carries = not value or value in "".join(ch for ch in json.dumps(arguments) if ch.isdigit())
        rows.append(
            {
                "part": part,
                "text": text,
                "expected": want,
                "called": name,
                "after_check": checked,
                "arguments": arguments,
                "checked": kept,
                "right": name == want and carries,
                "right_after_check": checked == want and (want is None or carries),
                "decision_s": round(seconds, 3),
                "words": words.strip(),
            }
        )
        print(f"{part:8} {want!s:13} {name!s:13} {checked!s:13} {seconds:5.2f}s  {text[:60]}")
    summary = {}
    for part in ("tune", "held-out"):
        mine = [r for r in rows if r["part"] == part]
        summary[part] = {
            "cases": len(mine),
            "right": sum(r["right"] for r in mine),
            "right_after_check": sum(r["right_after_check"] for r in mine),
            "false_tool_calls": sum(r["expected"] is None and r["called"] is not None for r in mine),
            "false_tool_calls_after_check": sum(r["expected"] is None and r["after_check"] is not None for r in mine),
            "missed_tool_calls": sum(r["expected"] is not None and r["called"] is None for r in mine),
            "decision_p50_s": round(percentile([r["decision_s"] for r in mine], 0.5), 2),
            "decision_p95_s": round(percentile([r["decision_s"] for r in mine], 0.95), 2),
            "tool_call_p50_s": round(statistics.median([r["decision_s"] for r in mine if r["called"]] or [0.0]), 2),
        }
        print(part, summary[part])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "tool_calls",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": machine("llama_cpp_python"),
                "model": "qwen2.5-0.5b",
                "summary": summary,
                "cases": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    asyncio.run(main(parser.parse_args().out))
