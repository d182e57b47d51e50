"""Which embedded LLM should answer the phone? A small, automatic front-desk evaluation.

What it measures
    Each candidate GGUF model is loaded exactly the way the server loads it (``LlamaChat`` with
    2 threads, a 2048-token context, the system prompt pre-evaluated by ``warm_up``) and asked
    ten realistic caller questions, one fresh conversation per question (system prompt + one
    user turn), with the production settings ``max_tokens=80`` and ``temperature=0.0``. The
    question list is asked ``--passes`` times (default 3) so the timings are medians, not one
    noisy sample. For every question it records:

    * correctness, judged by a strict automatic check: every required pattern must match and no
      forbidden pattern (a contradicting fact, e.g. "open on Sunday", a wrong price, a phone
      number or website that is not in the facts) may match, in every pass;
    * time to first token (TTFT): from the request to the first non-empty text piece, which is
      what the caller waits for before the voice can start speaking;
    * total reply time: until the stream ends;
    * the full reply text, so every verdict can be re-checked by a human afterwards.

Why
    The LLM is the largest share of the caller's wait and the part most likely to state a wrong
    fact (hours, prices, the emergency number). Every answer here is in the agent's own system
    prompt, so a model that misses them cannot be trusted with real callers, and a correct model
    that is too slow to first token makes the line feel dead. Both numbers are needed to choose.

Run it with ``.venv/bin/python bench/llm_eval.py`` (a few minutes on two cores); it prints a
summary table and writes ``bench/results/llm_eval.json``. Nothing is hard-coded but the questions
and their checks: replies and verdicts come from the run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from voxline.benchmarks.report import machine
from voxline.config import Settings, load_agent
from voxline.engine import files
from voxline.llm.base import ChatMessage
from voxline.llm.events import texts
from voxline.llm.llama import LlamaChat
from voxline.providers.pool import ModelPool

MODELS = ("qwen2.5-0.5b", "smollm2-135m")
MAX_TOKENS = 80
TEMPERATURE = 0.0
THREADS = 2
CONTEXT_TOKENS = 2048
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "llm_eval.json"

# --- reusable pattern pieces (all matching is case-insensitive) ---------------------------------

_AM = r"\s*(?:a\.?\s?m\.?|o'?clock|in the morning)?"
_PM = r"\s*(?:p\.?\s?m\.?|o'?clock|in the (?:afternoon|evening))?"
_TO = r"\s*(?:to|until|till|til|through|-|–|—)\s*"
_DOLLARS = r"\s*(?:dollars|usd|bucks|\$)"
# "not open", "aren't open", "don't open", "never open" ... directly before a word.
_NEG = r"(?<!not )(?<!n't )(?<!never )(?<!no longer )"

# Wrong in any reply: contact details that are not in the facts (a made-up phone number would
# send a caller in pain to a stranger).
INVENTED_CONTACT: tuple[str, ...] = (
    r"\b(?!555[\s.-]*0199\b)\d{3}[\s.-]*\d{4}\b",  # any phone number but the emergency line
    r"\bwww\.|https?://|\b[\w-]+\.(?:com|org|net)\b|\S+@\S+\.\w+",  # websites and e-mails
)


@dataclass(frozen=True)
class Question:
    """One caller question and the strict check of its reply."""

    key: str
    text: str
    required: tuple[str, ...]
    forbidden: tuple[str, ...] = ()

    def check(self, reply: str) -> tuple[bool, list[str]]:
        """(correct, reasons it is not).

        Correct iff every ``required`` pattern matches and neither a ``forbidden`` pattern nor an
        invented phone number, website or e-mail address does.
        """
        reasons = [f"missing /{p}/" for p in self.required if not re.search(p, reply, re.IGNORECASE)]
        reasons += [
            f"contradicts /{p}/" for p in (*self.forbidden, *INVENTED_CONTACT) if re.search(p, reply, re.IGNORECASE)
        ]
        return not reasons, reasons


QUESTIONS: tuple[Question, ...] = (
    Question(
        "weekday_hours",
        "Hi, what are your opening hours on a Tuesday?",
        required=(rf"\b(?:9|nine)(?::00)?{_AM}{_TO}(?:6|six)(?::00)?{_PM}\b",),
        forbidden=(
            r"closed (?:on )?tuesdays?",
            r"tuesdays?[^.]*\bclosed\b",
            rf"tuesdays?[^.]*\b(?:10|ten){_AM}{_TO}(?:2|two)\b",
        ),
    ),
    Question(
        "saturday_hours",
        "Are you open on Saturday? I work during the week.",
        required=(rf"\b(?:10|ten)(?::00)?{_AM}{_TO}(?:2|two)(?::00)?{_PM}\b",),
        forbidden=(
            r"closed (?:on )?saturdays?",
            r"saturdays?[^.]*\bclosed\b(?! on sunday)",
            rf"{_NEG}\bopen (?:on )?sundays?",
            r"\b(?:not|aren't|don't) open (?:on )?saturdays?",
        ),
    ),
    Question(
        "sunday",
        "Can I come in this Sunday for a check-up?",
        required=(r"\bclosed\b|\b(?:not|aren't|don't|do not|never) open\b",),
        forbidden=(
            r"^\W*(?:yes|yeah|sure|of course|absolutely|certainly)\b",
            rf"{_NEG}\bopen (?:on )?sundays?",
            rf"sundays? (?:from |at |between )?\d{{1,2}}(?::\d\d)?{_AM}",
        ),
    ),
    Question(
        "address",
        "Where exactly is the clinic? What's the address?",
        required=(r"\b(?:42|forty[- ]two)\b", r"\bpark (?:street|st\b)"),
        forbidden=(r"\b(?!42\b)\d+ park\b",),
    ),
    Question(
        "checkup_price",
        "How much does a regular check-up cost?",
        required=(rf"\$\s*60\b|\b(?:60|sixty){_DOLLARS}",),
        forbidden=(
            rf"check[- ]?ups?\W+(?:\w+\W+){{0,3}}?(?:\$\s*80\b|\b(?:80|eighty){_DOLLARS})",
            rf"\$\s*(?!60\b|80\b)\d+|\b(?!60\b|80\b)\d+{_DOLLARS}",
        ),
    ),
    Question(
        "cleaning_price",
        "And what do you charge for a teeth cleaning?",
        required=(rf"\$\s*80\b|\b(?:80|eighty){_DOLLARS}",),
        forbidden=(
            rf"cleanings?\W+(?:\w+\W+){{0,3}}?(?:\$\s*60\b|\b(?:60|sixty){_DOLLARS})",
            rf"\$\s*(?!60\b|80\b)\d+|\b(?!60\b|80\b)\d+{_DOLLARS}",
        ),
    ),
    Question(
        "dentists",
        "Which dentists work at your practice?",
        required=(r"\bshah\b", r"\bbecker\b"),
        forbidden=(r"\bdr\.?\s+(?!meera\b|shah\b|tom\b|becker\b)[a-z]+",),
    ),
    Question(
        "emergency",
        "I've got a terrible toothache and it's almost midnight. Who can I call?",
        required=(r"\b555[\s.-]*0199\b",),  # any other number is caught by INVENTED_CONTACT
    ),
    Question(
        "parking",
        "Is there somewhere to park when I come for my appointment?",
        required=(r"\bfree\b", r"\bbehind\b"),
        forbidden=(
            r"\bpaid parking\b",
            r"\bno parking\b",
            r"\bpay for (?:the )?parking\b",
            r"parking (?:is not|isn't) (?:free|available)",
            r"\bstreet parking\b",
        ),
    ),
    Question(
        "payment",
        "Can I pay by card, and do you take dental insurance?",
        required=(r"\bcards?\b", r"\binsurance\b", r"\b(?:yes|yeah|accept|take)\b"),
        forbidden=(
            r"\b(?:do not|don't|cannot|can't|not|no longer) (?:accept|take)\b",
            r"\bcash only\b",
            r"\bonly (?:accept|take) cash\b",
        ),
    ),
)


@dataclass
class Attempt:
    """One reply to one question."""

    reply: str
    ttft_ms: float | None  # None when nothing but whitespace came back
    total_ms: float
    pieces: int  # text pieces streamed, about one per token; MAX_TOKENS means the reply was cut short


@dataclass
class Answer:
    """A question asked once per pass. Correct only if the reply of every pass passes the check."""

    key: str
    question: str
    reply: str
    correct: bool
    reasons: list[str]
    ttft_ms: float | None  # median over passes
    total_ms: float  # median over passes
    replies_identical: bool
    attempts: list[Attempt]


@dataclass
class ModelRun:
    model: str
    gguf: str
    gguf_bytes: int
    load_ms: float
    warm_up_ms: float
    answers: list[Answer] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        attempts = [t for a in self.answers for t in a.attempts]
        ttfts = [a.ttft_ms for a in self.answers if a.ttft_ms is not None]
        totals = [a.total_ms for a in self.answers]
        worst_ttft = [t.ttft_ms for t in attempts if t.ttft_ms is not None]
        return {
            "model": self.model,
            "correct": sum(a.correct for a in self.answers),
            "questions": len(self.answers),
            "ttft_ms_median": _ms(statistics.median(ttfts)) if ttfts else None,
            "ttft_ms_max": _ms(max(worst_ttft)) if worst_ttft else None,
            "total_ms_median": _ms(statistics.median(totals)),
            "total_ms_max": _ms(max(t.total_ms for t in attempts)),
            "cut_at_max_tokens": sum(a.attempts[0].pieces >= MAX_TOKENS for a in self.answers),
            "replies_identical_across_passes": all(a.replies_identical for a in self.answers),
            "load_ms": _ms(self.load_ms),
            "warm_up_ms": _ms(self.warm_up_ms),
        }


def _ms(value: float) -> float:
    return round(value, 1)


async def ask(llm: LlamaChat, system_prompt: str, question: Question) -> Attempt:
    """A fresh conversation: the system prompt (cached since warm-up) and one caller turn."""
    messages: list[ChatMessage] = [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": question.text},
    ]
    parts: list[str] = []
    ttft: float | None = None
    start = time.perf_counter()
    async for piece in texts(llm.stream(messages, MAX_TOKENS, TEMPERATURE)):
        if ttft is None and piece.strip():
            ttft = time.perf_counter() - start
        parts.append(piece)
    total = time.perf_counter() - start
    return Attempt(
        reply="".join(parts).strip(),
        ttft_ms=None if ttft is None else _ms(ttft * 1000),
        total_ms=_ms(total * 1000),
        pieces=len(parts),
    )


def judge(question: Question, attempts: list[Attempt]) -> Answer:
    reasons: list[str] = []
    for attempt in attempts:
        for reason in question.check(attempt.reply)[1]:
            if reason not in reasons:
                reasons.append(reason)
    ttfts = [t.ttft_ms for t in attempts if t.ttft_ms is not None]
    return Answer(
        key=question.key,
        question=question.text,
        reply=attempts[0].reply,
        correct=not reasons,
        reasons=reasons,
        ttft_ms=_ms(statistics.median(ttfts)) if ttfts else None,
        total_ms=_ms(statistics.median(t.total_ms for t in attempts)),
        replies_identical=len({t.reply for t in attempts}) == 1,
        attempts=attempts,
    )


async def evaluate(model: str, system_prompt: str, cache_dir: Path, passes: int) -> ModelRun:
    """Load ``model`` as the server does, then ask every question once per pass.

    Passes go through the whole list in order rather than repeating a question back to back, so
    each request finds the previous conversation in llama.cpp's cache and shares only the system
    prompt with it, as a new call would in production.
    """
    gguf = files.llm_gguf(model, cache_dir)
    pool = ModelPool(1)
    try:
        start = time.perf_counter()
        llm = LlamaChat(model, gguf, pool, THREADS, CONTEXT_TOKENS)
        loaded = time.perf_counter()
        llm.warm_up(system_prompt)
        warmed = time.perf_counter()
        run = ModelRun(model, gguf.name, gguf.stat().st_size, (loaded - start) * 1000, (warmed - loaded) * 1000)
        attempts: dict[str, list[Attempt]] = {q.key: [] for q in QUESTIONS}
        for _ in range(passes):
            for question in QUESTIONS:
                attempts[question.key].append(await ask(llm, system_prompt, question))
        for question in QUESTIONS:
            answer = judge(question, attempts[question.key])
            run.answers.append(answer)
            mark = "ok " if answer.correct else "BAD"
            print(
                f"  [{mark}] {question.key:<15} ttft {answer.ttft_ms or 0:5.0f} ms  total {answer.total_ms:5.0f} ms  "
                f"{answer.reply!r}",
                flush=True,
            )
        del llm
        return run
    finally:
        pool.shutdown()
        gc.collect()


def table(summaries: list[dict[str, Any]]) -> str:
    head = f"{'model':<14} {'correct':>8} {'TTFT med ms':>12} {'TTFT max ms':>12} {'total med ms':>13}"
    rows = [
        f"{s['model']:<14} {s['correct']:>5}/{s['questions']:<2} {s['ttft_ms_median']:>12} "
        f"{s['ttft_ms_max']:>12} {s['total_ms_median']:>13}"
        for s in summaries
    ]
    return "\n".join([head, "-" * len(head), *rows])


async def main() -> None:
    parser = argparse.ArgumentParser(description="Pick the embedded LLM for the front-desk agent.")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--passes", type=int, default=3, help="times each question is asked (timing medians)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.passes < 1:
        parser.error("--passes must be at least 1")

    agent = load_agent(None)
    cache_dir = Settings().cache_dir
    runs: list[ModelRun] = []
    for model in args.models:
        print(f"== {model}", flush=True)
        runs.append(await evaluate(model, agent.system_prompt, cache_dir, args.passes))

    summaries = [run.summary() for run in runs]
    print()
    print(table(summaries))

    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine("llama-cpp-python"),
        "settings": {
            "max_tokens": MAX_TOKENS,
            "temperature": TEMPERATURE,
            "threads": THREADS,
            "context_tokens": CONTEXT_TOKENS,
            "passes": args.passes,
            "agent": agent.name,
        },
        "questions": [asdict(q) for q in QUESTIONS],
        "summary": summaries,
        "runs": [asdict(run) for run in runs],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out} and {plot(result, args.out.with_suffix('.png'))}")


def plot(result: dict, path: Path) -> Path:
    """Correct answers out of the questions asked, per model."""
    from voxline.benchmarks.report import plot_bars

    return plot_bars(
        path,
        "Front-desk questions answered correctly",
        {f"{s['model']} (first token {s['ttft_ms_median']:.0f} ms)": s["correct"] for s in result["summary"]},
        f"correct answers out of {result['summary'][0]['questions']}",
    )


if __name__ == "__main__":
    asyncio.run(main())
