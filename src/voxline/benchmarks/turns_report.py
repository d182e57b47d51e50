"""The turn-taking benchmark's table and plot: one row per family and split, goals beside them."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from voxline.benchmarks.report import _pyplot
from voxline.benchmarks.turns import FAMILIES, SPLITS

# The goals, as stated per family (what a row must show to pass).
GOALS = {
    "pauses": "cut-offs ≤ 2 %",
    "complete": "v2v p50 ≤ 800, p95 ≤ 1100 ms",
    "noise": "turns ≤ 1 %",
    "barge-in": "clear p50 ≤ 150 ms, none missed",
    "echo": "false barge-ins ≤ 5 %",
    "backchannel": "stopped ≤ 10 %",
    "false-interruption": "resumed within 1500 ms, nothing repeated",
}


def _fmt(value: object) -> str:
    return "–" if value is None else str(value)


def describe(family: str, row: dict) -> str:
    """The row's numbers in words."""
    if family in ("pauses", "complete"):
        latency = row["latency_ms"]
        return (
            f"cut-offs {_fmt(row['cut_off_pct'])} %, v2v p50 {_fmt(latency['p50'])} / p95 {_fmt(latency['p95'])} ms, "
            f"unanswered {row['unanswered']}, answered twice {row['answered_twice']}"
        )
    if family == "noise":
        return f"turns started {_fmt(row['false_turn_pct'])} %"
    if family == "barge-in":
        clear = row["clear_ms"]
        return f"clear p50 {_fmt(clear['p50'])} / p95 {_fmt(clear['p95'])} ms, missed {row['missed']}"
    if family == "echo":
        return f"false barge-ins (any clear) {_fmt(row['false_barge_in_pct'])} %, stopped {_fmt(row['stopped_pct'])} %"
    if family == "backchannel":
        resume = row["resume_ms"]
        return (
            f"stopped {_fmt(row['stopped_pct'])} %, paused then resumed {_fmt(row['paused_pct'])} %, "
            f"resume p50 {_fmt(resume['p50'])} ms"
        )
    resume, repeated = row["resume_ms"], row["repeated_ms"]
    return (
        f"resumed {_fmt(row['resumed_pct'])} %, resume p50 {_fmt(resume['p50'])} / p95 {_fmt(resume['p95'])} ms, "
        f"repeated p95 {_fmt(repeated['p95'])} ms"
    )


def turns_table(summary: dict[str, dict[str, dict]]) -> Table:
    table = Table(title="Turn-taking on phone audio (embedded models)")
    for column in ("family", "split", "cases", "result", "goal"):
        table.add_column(column, justify="right" if column == "cases" else "left")
    for family in FAMILIES:
        for split in (*SPLITS, "all"):
            row = summary.get(family, {}).get(split)
            if row is not None:
                table.add_row(family, split, str(row["cases"]), describe(family, row), GOALS[family])
    return table


def plot_turns(path: Path, result: dict) -> Path:
    """Left: the rate each family is judged by, per split; right: latency and clear times."""
    plt = _pyplot()
    rates = {
        "pauses": ("cut_off_pct", "cut-offs"),
        "noise": ("false_turn_pct", "noise turns"),
        "echo": ("false_barge_in_pct", "echo barge-ins"),
        "backchannel": ("stopped_pct", "backchannel stops"),
        "false-interruption": ("resumed_pct", "false interruptions resumed"),
    }
    summary = result["summary"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    labels = [label for _, label in rates.values()]
    for offset, split in ((-0.2, "tune"), (0.2, "held-out")):
        values = [summary.get(f, {}).get(split, {}).get(key) or 0.0 for f, (key, _) in rates.items()]
        bars = left.barh([i + offset for i in range(len(labels))], values, height=0.4, label=split)
        left.bar_label(bars, fmt="%.0f", fontsize=7, padding=2)
    left.set_yticks(range(len(labels)), labels)
    left.invert_yaxis()
    left.set_xlabel("% of cases")
    left.set_xlim(0, 105)
    left.legend(fontsize=8)
    left.grid(axis="x", alpha=0.3)
    series = {
        "voice-to-voice, complete": [r["latency_ms"] for r in result["results"] if r["family"] == "complete"],
        "voice-to-voice, pauses": [r["latency_ms"] for r in result["results"] if r["family"] == "pauses"],
        "barge-in clear": [r["clear_ms"] for r in result["results"] if r["family"] == "barge-in"],
        "resume after false interruption": [
            r["resume_ms"] for r in result["results"] if r["family"] == "false-interruption"
        ],
    }
    for name, values in series.items():
        known = sorted(v for v in values if v is not None)
        if known:
            right.plot(known, [(i + 1) / len(known) for i in range(len(known))], label=f"{name} (n={len(known)})")
    right.set_xlabel("ms")
    right.set_ylabel("fraction ≤ x")
    right.set_ylim(0, 1.02)
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(f"voxline bench turns: {result['cases']} cases, tune and held-out")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
