"""Benchmark output: a rich table on the terminal, a JSON result and a PNG plot under bench/results/."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path("bench/results")


SERVER_PACKAGES = ("voxline", "uvicorn", "uvloop", "websockets", "orjson", "numpy")


def machine(*packages: str) -> dict[str, object]:
    """The machine a result was measured on, and the versions that matter to it (``packages``,
    or those of the server's hot path)."""
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for name in packages or SERVER_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(),
        "versions": versions,
    }


def write_json(name: str, payload: dict, out_dir: Path = RESULTS) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    command = (
        "voxline " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        if Path(sys.argv[0]).name == "voxline"
        else " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])
    )
    payload = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": command,
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _fmt(value) -> str:
    return "—" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def steps_table(title: str, steps: list[dict]) -> Table:
    table = Table(title=title)
    for column in (
        "calls",
        "turns",
        "v2v p50/p95/p99 ms",
        "overhead p50/p95/p99 ms",
        "server overhead p50/p95 ms",
        "frame late p99 ms",
        "loop lag p99 ms",
        "CPU s / call-min",
        "MB / call",
        "errors",
        "sim lag p99",
        "CPU pressure",
        "verdict",
    ):
        table.add_column(column, justify="right" if column != "verdict" else "left")
    for s in steps:
        v, o = s["v2v_ms"], s["overhead_ms"]
        table.add_row(
            str(s["calls"]),
            str(s["turns"]),
            f"{_fmt(v['p50'])}/{_fmt(v['p95'])}/{_fmt(v['p99'])}",
            f"{_fmt(o['p50'])}/{_fmt(o['p95'])}/{_fmt(o['p99'])}",
            f"{_fmt(s['server_overhead_ms']['p50'])}/{_fmt(s['server_overhead_ms']['p95'])}",
            _fmt(s["frame_lateness_ms"]["p99"]),
            _fmt(s["loop_lag_ms"]["p99"]),
            _fmt(s["cpu_s_per_call_minute"]),
            _fmt(s["memory_per_call_mb"]),
            str(len(s["errors"]) + s["lost_turns"]),
            _fmt(s["simulator"]["loop_lag_p99_ms"]),
            "—" if s.get("cpu_pressure") is None else f"{s['cpu_pressure']:.0%}",
            "[green]pass[/]" if s["passed"] else f"[red]{s['verdict']}[/]",
        )
    return table


def print_errors(console: Console, steps: list[dict], limit: int = 10) -> None:
    for s in steps:
        for line in s["errors"][:limit]:
            console.print(f"[red]{s['calls']} calls:[/] {line}")
        if len(s["errors"]) > limit:
            console.print(f"[red]{s['calls']} calls:[/] … {len(s['errors']) - limit} more")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_ladder(path: Path, title: str, steps: list[dict], key: str, limit_ms: float | None) -> Path | None:
    """Left: the chosen latency's p50/p95/p99 against concurrent calls; right: its distribution per step."""
    plt = _pyplot()

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    calls = [s["calls"] for s in steps]
    for q in ("p50", "p95", "p99"):
        left.plot(calls, [s[key][q] for s in steps], marker="o", label=q)
    if limit_ms is not None:
        left.axhline(limit_ms, color="red", linestyle="--", label=f"limit {limit_ms:g} ms (p95)")
    left.set_xlabel("concurrent calls")
    left.set_ylabel(f"{key.replace('_ms', '')} (ms)")
    left.set_title(title)
    left.grid(alpha=0.3)
    left.legend()
    values_key = "overheads" if key == "overhead_ms" else "latencies"
    for s in steps:
        values = s.get(values_key) or []
        if values:
            right.hist(values, bins=40, histtype="step", label=f"{s['calls']} calls")
    right.set_xlabel(f"{key.replace('_ms', '')} per turn (ms)")
    right.set_ylabel("turns")
    right.set_title("distribution")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_soak(path: Path, samples: list[dict], title: str) -> Path:
    plt = _pyplot()

    fig, left = plt.subplots(figsize=(9, 4))
    t = [s["t"] / 60 for s in samples]
    left.plot(t, [s["rss_mb"] for s in samples], color="tab:blue", label="RSS (MB)")
    left.set_xlabel("minutes")
    left.set_ylabel("server RSS (MB)", color="tab:blue")
    right = left.twinx()
    right.plot(t, [s["fds"] for s in samples], color="tab:orange", label="open descriptors")
    right.set_ylabel("server open file descriptors", color="tab:orange")
    left.set_title(title)
    left.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_distributions(
    path: Path, title: str, series: dict[str, list[float]], xlabel: str, limit: float | None = None
) -> Path:
    """Several latency samples side by side: histogram and cumulative distribution."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, values in series.items():
        if not values:
            continue
        left.hist(values, bins=30, histtype="step", linewidth=1.5, label=f"{name} (n={len(values)})")
        ordered = sorted(values)
        right.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=name)
    for axis in (left, right):
        axis.set_xlabel(xlabel)
        axis.grid(alpha=0.3)
        if limit is not None:
            axis.axvline(limit, color="red", linestyle="--", linewidth=1, label=f"target {limit:g}")
        axis.legend(fontsize=8)
    left.set_ylabel("count")
    right.set_ylabel("fraction ≤ x")
    right.set_ylim(0, 1.02)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_bars(path: Path, title: str, values: dict[str, float], xlabel: str) -> Path:
    """One horizontal bar per item (micro-benchmarks, scores)."""
    plt = _pyplot()
    names = list(values)
    fig, axis = plt.subplots(figsize=(10, 0.45 * len(names) + 1.5))
    axis.barh(names, [values[n] for n in names], color="tab:blue")
    for y, name in enumerate(names):
        axis.text(values[name], y, f" {values[name]:g}", va="center", fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel(xlabel)
    axis.set_title(title)
    axis.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
