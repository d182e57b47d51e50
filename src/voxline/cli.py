"""The ``voxline`` command: ``serve`` answers calls, ``call`` plays Twilio against a server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Voxline: answers phone calls with a real-time voice AI agent.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()


def _add_bench() -> None:
    from voxline.benchmarks.commands import bench_app

    app.add_typer(bench_app, name="bench")


_add_bench()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    agent: Annotated[Path | None, typer.Option(help="Agent TOML file (default: the packaged front desk).")] = None,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Allow running without TWILIO_AUTH_TOKEN: requests are NOT authenticated, "
            "and /phone works without VOXLINE_API_TOKEN.",
        ),
    ] = False,
) -> None:
    """Start the server with the embedded models."""
    import logging

    from voxline.app import create_app
    from voxline.config import Settings
    from voxline.logs import configure
    from voxline.server import DrainingServer, uvicorn_config

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = Settings()
    if agent is not None:
        settings.agent_file = agent
    settings.dev_mode = settings.dev_mode or dev
    configure(settings.log_level, settings.log_personal_data)
    if not settings.twilio_auth_token.get_secret_value():
        if not dev:
            console.print(
                "[bold red]Refusing to start:[/] TWILIO_AUTH_TOKEN is not set, so anyone could place "
                "calls through this server. Set it (Twilio console → Account → Auth Token), or pass "
                "--dev for a local try with unsigned requests."
            )
            raise typer.Exit(code=2)
        logging.getLogger("voxline").warning(
            "DEVELOPMENT MODE: TWILIO_AUTH_TOKEN is not set; webhooks and media streams are NOT authenticated. "
            "Never expose this server to the internet like this."
        )
    app = create_app(settings)
    config = uvicorn_config(app, settings, host, port)
    # The imported libraries are never freed: a full garbage collection that walks them all takes
    # ~100 ms on 2 cores, an event-loop stall every call feels. Frozen, they are skipped.
    import gc

    gc.freeze()
    # Full collections still walk every live object of every call in progress: 40–50 ms at 70 calls,
    # every ~20 s under load, an event-loop stall that lands in some turn's latency. Checking for
    # one after 100 middle-generation passes instead of 10 makes them ten times rarer; cyclic
    # garbage in the oldest generation just waits a little longer (reference counting frees the rest).
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, 100)
    DrainingServer(config, app.state.services, settings.shutdown_grace_s).run()


@app.command()
def call(
    turn: Annotated[
        list[str],
        typer.Option("--turn", "-t", help="A WAV file to speak, or text to synthesize; repeat for more turns."),
    ],
    url: Annotated[str, typer.Option(help="Base URL of the Voxline server.")] = "http://127.0.0.1:8000",
    public_url: Annotated[str | None, typer.Option(help="Public base URL the server signs with, if not --url.")] = None,
    barge_in: Annotated[
        float | None, typer.Option(help="Talk over the greeting this many seconds after it starts.")
    ] = None,
    save: Annotated[Path | None, typer.Option(help="Save what the caller heard as a WAV file.")] = None,
    quiet: Annotated[float, typer.Option(help="Seconds of quiet that mean the agent finished talking.")] = 1.0,
    mode: Annotated[
        str, typer.Option(help="'stream' (POST /voice-stream, Media Streams) or 'record' (POST /voice, <Record>).")
    ] = "stream",
) -> None:
    """Play Twilio against a running server and print each turn's voice-to-voice latency."""
    from voxline.audio.pcm import TELEPHONY_RATE, write_wav
    from voxline.logs import configure
    from voxline.simulator.caller import SimulatedCall, wait_until_ready
    from voxline.simulator.voices import caller_turns

    configure("WARNING")
    turns = caller_turns(turn)
    if barge_in is not None and turns:
        turns[0].barge_in_after_s = barge_in
    token = os.environ.get("TWILIO_AUTH_TOKEN", "")
    if mode == "record":
        _record_call(url, token, public_url, turns, save)
        return
    if mode != "stream":
        raise typer.BadParameter("--mode is 'stream' or 'record'")

    async def place_call():
        await wait_until_ready(url)
        return await SimulatedCall(url, token, public_url, quiet_s=quiet).run(turns)

    result = asyncio.run(place_call())
    said = _what_was_said(url, result.call_sid)
    table = Table(title=f"Call {result.call_sid}")
    table.add_column("turn")
    table.add_column("speech (s)", justify="right")
    table.add_column("voice-to-voice latency (ms)", justify="right")
    table.add_column("clear", justify="right")
    if said is not None:
        table.add_column("heard as")
        table.add_column("agent answered")
    for index, item in enumerate(result.turns):
        latency = "no reply" if item.latency_s is None else f"{item.latency_s * 1000:.0f}"
        clear = "" if item.clear_at is None else f"{(item.clear_at - item.speech_start) * 1000:.0f} ms after speech"
        table.add_row(
            item.label, f"{item.speech_end - item.speech_start:.2f}", latency, clear, *_said_columns(said, index)
        )
    console.print(table)
    if save is not None:
        write_wav(save, result.heard(), TELEPHONY_RATE)
        console.print(f"saved what the caller heard to {save}")


def _what_was_said(url: str, call_sid: str) -> list[tuple[str, str]] | None:
    """Per answered turn, what the server heard the caller say and what the agent answered (from
    the call-record API, with VOXLINE_API_TOKEN); None without the token or the API."""
    import httpx

    from voxline.simulator.caller import ended_call_record

    token = os.environ.get("VOXLINE_API_TOKEN", "")
    if not token:
        console.print("(set VOXLINE_API_TOKEN to see what the caller was heard to say and what the agent answered)")
        return None
    try:
        record = asyncio.run(ended_call_record(url, token, call_sid, timeout_s=10))
    except httpx.HTTPError:
        return None
    if record is None:
        return None
    turns = [t for t in record.get("turns", []) if t.get("kind", "answer") == "answer"]
    return [(t.get("caller_text", ""), t.get("agent_text", "")) for t in turns]


def _said_columns(said: list[tuple[str, str]] | None, index: int) -> list[str]:
    """The turn's "heard as" and "agent answered" cells (none without the API)."""
    if said is None:
        return []
    return list(said[index]) if index < len(said) else ["", ""]


def _record_call(url: str, token: str, public_url: str | None, turns, save: Path | None) -> None:
    import numpy as np

    from voxline.audio.pcm import TELEPHONY_RATE, write_wav
    from voxline.simulator.caller import wait_until_ready
    from voxline.simulator.recorded_call import RecordedCall

    async def place_call():
        await wait_until_ready(url)
        return await RecordedCall(url, token, os.environ.get("TWILIO_ACCOUNT_SID") or None, public_url).run(turns)

    result = asyncio.run(place_call())
    said = _what_was_said(url, result.call_sid)
    table = Table(title=f"Recorded call {result.call_sid}")
    table.add_column("turn")
    table.add_column("speech (s)", justify="right")
    table.add_column("voice-to-voice latency (ms)", justify="right")
    if said is not None:
        table.add_column("heard as")
        table.add_column("agent answered")
    for index, item in enumerate(result.turns):
        latency = "no reply" if item.latency_s is None else f"{item.latency_s * 1000:.0f}"
        table.add_row(item.label, f"{item.speech_end - item.speech_start:.2f}", latency, *_said_columns(said, index))
    console.print(table)
    if save is not None:
        write_wav(save, np.concatenate([result.greeting_audio, *[t.reply_audio for t in result.turns]]), TELEPHONY_RATE)
        console.print(f"saved what the caller heard to {save}")


@app.command()
def dial(
    to: Annotated[str, typer.Argument(help="The number to call, E.164, e.g. +14155550123.")],
    from_: Annotated[
        str, typer.Option("--from", help="A Twilio number of the account; default: the server's VOXLINE_OUTBOUND_FROM.")
    ] = "",
    url: Annotated[str, typer.Option(help="Base URL of the running Voxline server.")] = "http://127.0.0.1:8000",
) -> None:
    """Have the agent call TO (through the running server's POST /api/calls, with VOXLINE_API_TOKEN)."""
    import httpx

    token = os.environ.get("VOXLINE_API_TOKEN", "")
    if not token:
        console.print("[red]set VOXLINE_API_TOKEN to the server's API token[/red]")
        raise typer.Exit(2)
    body = {"to": to, **({"from": from_} if from_ else {})}
    try:
        answer = httpx.post(
            f"{url.rstrip('/')}/api/calls", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
    except httpx.HTTPError as exc:
        console.print(f"[red]could not reach {url}: {exc}[/red]")
        raise typer.Exit(1) from exc
    if answer.status_code != 201:
        detail = (
            answer.json().get("detail", answer.text)
            if answer.headers.get("content-type", "").startswith("application/json")
            else answer.text
        )
        console.print(f"[red]{answer.status_code}: {detail}[/red]")
        raise typer.Exit(1)
    placed = answer.json()
    console.print(f"calling {placed['to']} from {placed['from']}: {placed['call_sid']}")


@app.command("forget-caller")
def forget_caller(
    number: Annotated[str, typer.Argument(help="The caller's number, exactly as stored, e.g. +15005550006.")],
) -> None:
    """Delete every call from NUMBER, with its turns, events and history, from the configured call store."""
    from voxline.config import Settings
    from voxline.store.callstore import open_store
    from voxline.store.queries import forget_caller as delete_calls

    async def forget() -> int:
        async with open_store(Settings()) as store:
            async with store.engine.begin() as connection:
                return await delete_calls(connection, number)

    console.print(f"deleted {asyncio.run(forget())} calls from {number}")


if __name__ == "__main__":
    app()
