"""``voxline bench soak``: many calls for a long time on fake providers.

Calls keep being placed and hung up (each of a few turns), so anything a call leaves behind
(memory, sockets, tasks) accumulates and shows. The server's RSS and open descriptors are
sampled throughout; a straight line fitted to the samples after warm-up gives the growth per
minute. Every turn each caller spoke is looked up in the server's call records through the API.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from voxline.benchmarks.fakes import FakeLatencies
from voxline.benchmarks.harness import BenchServer, FakeProviders, split_cpus
from voxline.benchmarks.load import Limits, StepConfig, floor_for, judge, run_step, server_floor_for
from voxline.benchmarks.system import busy_cpus, load_average, rss_bytes

FLAT_RSS_MB_PER_MIN = 1.0
FLAT_FDS_PER_MIN = 0.5


def slope_per_minute(samples: list[dict], key: str, after_s: float) -> float | None:
    points = [(s["t"], s[key]) for s in samples if s["t"] >= after_s]
    if len(points) < 3:
        return None
    t, y = np.array(points, dtype=float).T
    return round(float(np.polyfit(t / 60.0, y, 1)[0]), 3)


def run_soak(
    calls: int, minutes: float, sample_s: float, server_cpus: str | None, label: str, out: Path, console: Console
) -> dict:
    from voxline.benchmarks.report import plot_soak, print_errors, steps_table, write_json

    server_set, client_set = split_cpus(server_cpus)
    os.sched_setaffinity(0, client_set)
    latencies = FakeLatencies()
    floor = floor_for(latencies)
    cfg = StepConfig(step_s=minutes * 60, sample_every_s=sample_s)
    console.print(
        f"soak: {calls} calls for {minutes:g} min; server CPUs {sorted(server_set)}; machine busy "
        f"{busy_cpus():.2f} CPUs, load average {load_average()[0]:.2f}"
    )
    with (
        FakeProviders(latencies, client_set) as fakes,
        BenchServer(fakes.server_env(), server_set, out / f"{label}-server.log") as server,
    ):
        time.sleep(1.0)
        rss_idle = rss_bytes(server.pid)

        def show(sample: dict) -> None:
            console.print(
                f"  t={sample['t']:>6.0f} s  RSS {sample['rss_mb']:>7.1f} MB  fds {sample['fds']:>4}", highlight=False
            )

        step = run_step(
            server, calls, cfg, floor, client_set, rss_idle, on_sample=show, server_floor_ms=server_floor_for(latencies)
        )
    judge(step, Limits())
    # The first half of the window still warms up (allocator arenas, connection pools, caches);
    # a leak shows as growth over the second half.
    warm = cfg.ramp_s + cfg.settle_s + 0.5 * cfg.step_s
    rss_slope = slope_per_minute(step.samples, "rss_mb", warm)
    fds_slope = slope_per_minute(step.samples, "fds", warm)
    flat = (
        rss_slope is not None
        and rss_slope <= FLAT_RSS_MB_PER_MIN
        and fds_slope is not None
        and fds_slope <= FLAT_FDS_PER_MIN
    )
    ok = flat and not step.errors and not step.lost_turns and not step.unanswered
    summary: dict[str, Any] = {
        "calls": calls,
        "minutes": minutes,
        "calls_completed": step.calls_completed,
        "turns_in_window": step.turns,
        "rss_mb": {
            "idle": step.rss_idle_mb,
            "first": step.samples[0]["rss_mb"] if step.samples else None,
            "last": step.samples[-1]["rss_mb"] if step.samples else None,
            "peak": step.rss_peak_mb,
            "slope_mb_per_min": rss_slope,
        },
        "fds": {
            "first": step.samples[0]["fds"] if step.samples else None,
            "last": step.samples[-1]["fds"] if step.samples else None,
            "slope_per_min": fds_slope,
        },
        "lost_turns": step.lost_turns,
        "unanswered": step.unanswered,
        "errors": len(step.errors),
        "flat": flat,
        "ok": ok,
        "slope_fitted_after_s": warm,
        "limits": {"rss_mb_per_min": FLAT_RSS_MB_PER_MIN, "fds_per_min": FLAT_FDS_PER_MIN},
    }
    result: dict[str, Any] = {
        "server_cpus": sorted(server_set),
        "client_cpus": sorted(client_set),
        "floor_ms": round(floor, 1),
        "fake_latencies_ms": asdict(latencies),
        "summary": summary,
        "load_after": [round(x, 2) for x in load_average()],
        "steps": [asdict(step)],
    }
    console.print(steps_table(f"soak: {calls} calls, {minutes:g} min", result["steps"]))
    print_errors(console, result["steps"])
    console.print(
        f"RSS {summary['rss_mb']['first']} → {summary['rss_mb']['last']} MB (slope {rss_slope} MB/min), "
        f"descriptors {summary['fds']['first']} → {summary['fds']['last']} (slope {fds_slope}/min), "
        f"{step.calls_completed} calls, {step.lost_turns} lost turns, {len(step.errors)} errors: "
        + ("[green]OK[/]" if ok else "[red]NOT OK[/]")
    )
    path = write_json(label, result, out)
    plot = plot_soak(out / f"{label}.png", step.samples, f"soak: {calls} calls, {minutes:g} min (server)")
    console.print(f"wrote {path} and {plot}")
    return result
