"""The ``voxline bench`` sub-commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

bench_app = typer.Typer(help="Benchmarks: load, embedded capacity, soak, micro-benchmarks.", no_args_is_help=True)
# Wide enough for the result tables when the output is a file or a pipe (rich assumes 80 columns).
console = Console() if sys.stdout.isatty() else Console(width=180)

CpusOption = Annotated[
    str | None,
    typer.Option(
        help="CPUs for the server, e.g. '0' or '0-1' ('all': no pinning). Default: the first CPU; "
        "simulators and fakes get the others."
    ),
]


def _ladder(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


@bench_app.command()
def load(
    calls: Annotated[
        str, typer.Option(help="Concurrent calls per step, stepped up until two steps in a row fail.")
    ] = "10,20,30,40,50,60,70,80,90,100,120,150,200",
    step_s: Annotated[
        float, typer.Option(help="Measured seconds per step (after a ramp of --ramp-s and 5 s to settle).")
    ] = 60.0,
    ramp_s: Annotated[float, typer.Option(help="Seconds over which a step's calls are started.")] = 5.0,
    stt_ms: Annotated[float, typer.Option(help="Fake STT latency.")] = 150.0,
    llm_ttft_ms: Annotated[float, typer.Option(help="Fake LLM time to first token.")] = 200.0,
    llm_token_ms: Annotated[float, typer.Option(help="Fake LLM time per further token.")] = 0.0,
    tts_ms: Annotated[float, typer.Option(help="Fake TTS latency.")] = 150.0,
    overhead_p95_ms: Annotated[float, typer.Option(help="Limit: Voxline's added latency, p95.")] = 50.0,
    frame_lateness_p99_ms: Annotated[float, typer.Option(help="Limit: outbound frame lateness, p99.")] = 20.0,
    server_cpus: CpusOption = None,
    sim_processes: Annotated[int, typer.Option(help="Simulator processes (0: one per 150 calls).")] = 0,
    embedded: Annotated[
        bool, typer.Option("--embedded", help="Use the embedded models instead of fakes (same as `bench capacity`).")
    ] = False,
    label: Annotated[str, typer.Option(help="Result name under --out.")] = "",
    out: Annotated[Path, typer.Option(help="Folder for the JSON result, the plot and the server log.")] = Path(
        "bench/results"
    ),
) -> None:
    """N concurrent simulated calls against `voxline serve` with fake providers; finds calls per core."""
    if embedded:
        capacity(
            calls="1,2,3,4,5,6,8",
            step_s=step_s,
            ramp_s=ramp_s,
            server_cpus=server_cpus or "all",
            label=label or "capacity",
            out=out,
        )
        return
    from voxline.benchmarks.fakes import FakeLatencies
    from voxline.benchmarks.load import Limits, RunSettings, StepConfig

    run = RunSettings(
        ladder=_ladder(calls),
        limits=Limits(overhead_p95_ms, frame_lateness_p99_ms),
        step=StepConfig(step_s=step_s, ramp_s=ramp_s, sim_processes=sim_processes),
        latencies=FakeLatencies(stt_ms, llm_ttft_ms, llm_token_ms, tts_ms),
        server_cpus=server_cpus,
        log_path=out / f"{label or 'load'}-server.log",
    )
    _run_and_report(
        run, label or "load", out, "overhead_ms", overhead_p95_ms, "Voxline's added latency (v2v − silence − fakes)"
    )


@bench_app.command()
def capacity(
    calls: Annotated[
        str, typer.Option(help="Concurrent calls per step, stepped up until two steps in a row fail.")
    ] = "1,2,3,4,5,6,8",
    step_s: Annotated[float, typer.Option(help="Measured seconds per step.")] = 60.0,
    ramp_s: Annotated[float, typer.Option(help="Seconds over which a step's calls are started.")] = 5.0,
    v2v_p95_ms: Annotated[float, typer.Option(help="Limit: voice-to-voice latency p95.")] = 2000.0,
    server_cpus: Annotated[
        str | None, typer.Option(help="CPUs for the server ('all': the models use every core).")
    ] = "all",
    label: Annotated[str, typer.Option(help="Result name under --out.")] = "capacity",
    out: Annotated[Path, typer.Option(help="Folder for the JSON result, the plot and the server log.")] = Path(
        "bench/results"
    ),
) -> None:
    """Concurrent calls on the embedded models (the default `voxline serve`) before p95 voice-to-voice exceeds 2 s."""
    from voxline.benchmarks.load import Limits, RunSettings, StepConfig

    run = RunSettings(
        ladder=_ladder(calls),
        limits=Limits(None, 20.0, v2v_p95_ms, sim_lag_p99_ms=100.0),
        step=StepConfig(step_s=step_s, ramp_s=ramp_s),
        latencies=None,
        server_cpus=server_cpus,
        log_path=out / f"{label}-server.log",
    )
    _run_and_report(run, label, out, "v2v_ms", v2v_p95_ms, "voice-to-voice latency, embedded models")


def _run_and_report(run, label: str, out: Path, key: str, limit: float, title: str) -> None:
    from voxline.benchmarks.load import run_ladder
    from voxline.benchmarks.report import plot_ladder, print_errors, steps_table, write_json

    result = run_ladder(run, console.print)
    console.print(steps_table(title, result["steps"]))
    print_errors(console, result["steps"])
    cores = len(result["server_cpus"])
    console.print(
        f"[bold]largest passing N: {result['max_calls']} concurrent calls on {cores} server "
        f"CPU{'s' if cores > 1 else ''} = {result['calls_per_core']} calls per core[/] "
        f"(next step: {result['limited_by']})"
    )
    if cores > 1 and run.latencies is None:
        console.print("(the embedded models use every server CPU, so the total is the machine's capacity)")
    path = write_json(label, result, out)
    plot = plot_ladder(out / f"{label}.png", title, result["steps"], key, limit)
    console.print(f"wrote {path} and {plot}")


@bench_app.command()
def soak(
    calls: Annotated[int, typer.Option(help="Concurrent calls.")] = 30,
    minutes: Annotated[float, typer.Option(help="Duration of the measured window.")] = 10.0,
    sample_s: Annotated[float, typer.Option(help="Seconds between memory/descriptor samples.")] = 10.0,
    server_cpus: CpusOption = None,
    label: Annotated[str, typer.Option(help="Result name under --out.")] = "soak",
    out: Annotated[Path, typer.Option(help="Folder for the JSON result, the plot and the server log.")] = Path(
        "bench/results"
    ),
) -> None:
    """Long run on fake providers: flat memory and descriptors, no lost turn, no error."""
    from voxline.benchmarks.soak import run_soak

    run_soak(calls, minutes, sample_s, server_cpus, label, out, console)


@bench_app.command()
def turns(
    per_family: Annotated[int, typer.Option(help="Cases per family (0: the whole set).")] = 0,
    split: Annotated[str, typer.Option(help="'tune', 'held-out' or 'all'.")] = "all",
    family: Annotated[list[str], typer.Option(help="Only these families (repeatable; default: all).")] = [],  # noqa: B006
    env: Annotated[list[str], typer.Option(help="KEY=VALUE for the server, repeatable.")] = [],  # noqa: B006
    label: Annotated[str, typer.Option(help="Result name under --out.")] = "turns",
    out: Annotated[Path, typer.Option(help="Folder for the JSON result and the plot.")] = Path("bench/results"),
) -> None:
    """Turn-taking on phone audio: cut-offs, latency, noise, barge-in, echo, backchannels, resumes."""
    from voxline.benchmarks.report import write_json
    from voxline.benchmarks.turns import run_benchmark
    from voxline.benchmarks.turns_report import plot_turns, turns_table

    settings = dict(item.split("=", 1) for item in env)
    result = run_benchmark(per_family, split, settings, out / f"{label}-server.log", console.print, family)
    result["settings"] = {"per_family": per_family, "split": split, "families": family, "env": settings}
    console.print(turns_table(result["summary"]))
    path = write_json(label, result, out)
    plot = plot_turns(out / f"{label}.png", result)
    console.print(f"wrote {path} and {plot}")


@bench_app.command()
def conversation(
    mode: Annotated[list[str], typer.Option(help="'text' and/or 'speech' (repeatable; default both).")] = [],  # noqa: B006
    part: Annotated[str, typer.Option(help="'tune', 'held-out' or 'all'.")] = "all",
    business: Annotated[list[str], typer.Option(help="Only these businesses (repeatable; default: all).")] = [],  # noqa: B006
    label: Annotated[str, typer.Option(help="Result name under --out.")] = "conversation",
    out: Annotated[Path, typer.Option(help="Folder for the JSON result, the plot and the server logs.")] = Path(
        "bench/results"
    ),
) -> None:
    """Right answers on four businesses' agent files: spoken (espeak-ng callers) and typed."""
    from voxline.benchmarks.conversation import run_benchmark
    from voxline.benchmarks.conversation_report import conversation_table, plot_conversation
    from voxline.benchmarks.report import write_json

    result = run_benchmark(mode or ["text", "speech"], part, out, console.print, business)
    console.print(conversation_table(result["summary"]))
    path = write_json(label, result, out)
    plot = plot_conversation(out / f"{label}.png", result["summary"])
    console.print(f"wrote {path} and {plot}")


@bench_app.command()
def micro(
    repeat: Annotated[int, typer.Option(help="Timed repetitions per benchmark (the best is kept).")] = 5,
    label: Annotated[str, typer.Option(help="Result name under --out.")] = "micro",
    out: Annotated[Path, typer.Option(help="Folder for the JSON result.")] = Path("bench/results"),
) -> None:
    """Per-frame costs: μ-law, VAD (WebRTC, Silero), message parse/serialize, resampling, the inbound path."""
    from voxline.benchmarks.micro import run_micro

    run_micro(repeat, label, out, console)
