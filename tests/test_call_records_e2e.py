"""Call records of real calls: written turn by turn while the call goes on, and kept through a
database outage during a call (the real server, the simulator playing Twilio, real speech)."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time

import httpx
import pytest

from conftest import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN
from test_call_api import listening
from voxline.simulator.caller import CallerTurn, SimulatedCall
from voxline.simulator.recorded_call import RecordedCall
from voxline.simulator.voices import speech_from_wav

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def api(server, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH) as client:
        return await client.get(path)


async def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (found := await predicate()):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)
    return found


async def test_each_turn_is_in_the_store_while_the_call_is_still_on(server, librivox):
    call = SimulatedCall(server.url, AUTH_TOKEN)
    running = asyncio.create_task(call.run([CallerTurn("young-man", speech_from_wav(librivox["0880"]))], linger_s=8))

    async def first_turn_stored():
        response = await api(server, f"/api/calls/{call.call_sid}")
        return response.status_code == 200 and response.json()["turns"] and response.json()

    stored = await wait_for(first_turn_stored, 90, "the first turn was not written during the call")
    assert not running.done(), "the call was over before its turn was stored"
    assert stored["outcome"] == "in-progress" and stored["ended_at"] is None
    assert {"young", "man"} <= set(re.findall(r"[a-z']+", stored["turns"][0]["caller_text"].lower()))
    assert stored["turns"][0]["stages_ms"]["first_frame_sent"] > 0
    live = (await api(server, "/api/live")).json()["calls"]
    assert [c["turn_count"] for c in live if c["call_sid"] == call.call_sid] == [1]

    await running

    async def ended():
        body = (await api(server, f"/api/calls/{call.call_sid}")).json()
        return body["outcome"] != "in-progress" and body

    body = await wait_for(ended, 15, "the end of the call was not written")
    assert body["outcome"] == "completed" and body["ended_at"] >= body["started_at"]
    assert call.call_sid not in [c["call_sid"] for c in (await api(server, "/api/live")).json()["calls"]]
    history = asyncio.run_coroutine_threadsafe(server.services.store.history(call.call_sid), server.loop).result(10)
    assert [m["role"] for m in history] == ["assistant", "user", "assistant"]  # what the caller heard


async def test_a_database_outage_during_a_call_loses_no_turn(make_server, librivox, caplog):
    server = listening(make_server())
    await wait_for(
        lambda: asyncio.sleep(0, server.services.store.writer.available and server.services.store.writer.pending == 0),
        10,
        "store not ready",
    )
    database = server.services.settings.data_dir / "voxline.db"
    caplog.set_level(logging.INFO, logger="voxline.store")
    lock = sqlite3.connect(database, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another connection holds the write lock: the database is locked
    try:
        turns = [
            CallerTurn("young-man", speech_from_wav(librivox["0880"])),
            CallerTurn("amiable", speech_from_wav(librivox["0930"])),
        ]
        result = await SimulatedCall(server.url, AUTH_TOKEN).run(turns)
        latencies = [t.latency_s for t in result.turns]
        print("voice-to-voice during the outage (s):", latencies)
        assert all(latency is not None and latency < 5 for latency in latencies), latencies  # the call went on
        record = await server.wait_record_closed(result.call_sid)
        assert [t.index for t in record.turns] == [1, 2]
        health = httpx.get(server.url + "/healthz").json()["store"]
        assert health["available"] is False and health["pending_writes"] >= 4, health  # start, 2 turns, end
        assert "error" not in health  # no error text for anyone who asks; the API says it
        detail = httpx.get(server.url + "/api/health", headers={"Authorization": f"Bearer {API_TOKEN}"}).json()
        assert "locked" in detail["store"]["error"]
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    async def caught_up():
        return httpx.get(server.url + "/healthz").json()["store"]["pending_writes"] == 0

    await wait_for(caught_up, 30, "the pending writes were not written after the outage")
    stored = (await api(server, f"/api/calls/{result.call_sid}")).json()
    assert stored["outcome"] == "completed" and stored["turn_count"] == 2
    assert [t["caller_text"] for t in stored["turns"]] == [t.caller_text for t in record.turns]
    assert [t["heard_text"] for t in stored["turns"]] == [t.heard_text for t in record.turns]
    outage_logs = [r for r in caplog.records if "call store unavailable" in r.getMessage()]
    assert len(outage_logs) == 1  # once per outage, not per write


async def test_recorded_calls_are_in_the_store_turn_by_turn(server, librivox):
    turn = CallerTurn("amiable", speech_from_wav(librivox["0930"]))
    result = await RecordedCall(server.url, AUTH_TOKEN, ACCOUNT_SID).run([turn])

    async def completed():
        body = (await api(server, f"/api/calls/{result.call_sid}")).json()
        return body.get("outcome") == "completed" and body

    stored = await wait_for(completed, 15, "the recorded call was not stored")
    assert stored["path"] == "recording" and stored["turn_count"] == 1
    assert {"fetch", "stt", "llm", "tts", "total"} <= set(stored["turns"][0]["stages_ms"])
    assert stored["turns"][0]["caller_text"] and stored["turns"][0]["agent_text"]
