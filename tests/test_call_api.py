"""The call-record API on the real server (loopback port, real SQLite file): auth, paging,
filters, one call, statistics, forgetting a caller, retention, and the forget-caller command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from conftest import API_TOKEN
from voxline.session.records import CallRecord, CallRegistry
from voxline.session.timeline import TurnRecord
from voxline.store import CallStore, queries

pytestmark = pytest.mark.e2e  # the server loads the embedded models once for the session

HINDI = "मेरा अपॉइंटमेंट कल सुबह दस बजे है।"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
NOW = time.time()
# sid, caller, called, path, outcome, hours ago, voice-to-voice of each turn
CALLS = [
    ("CA01", "+15550001111", "+15005550001", "streaming", "completed", 1, (700.0, 900.0)),
    ("CA02", "+15550002222", "+15005550001", "recording", "completed", 2, (2100.0,)),
    ("CA03", "+15550001111", "+15005550002", "streaming", "caller-silent", 3, (650.0,)),
    ("CA04", "+919876543210", "+15005550001", "streaming", "completed", 5, (1000.0, 1100.0, 1200.0)),
    ("CA05", "+15550003333", "+15005550002", "softphone", "disconnected", 26, ()),
    ("CA06", "+15550001111", "+15005550001", "streaming", "failed", 30, (800.0,)),
    ("CA07", "+15550004444", "+15005550001", "streaming", "completed", 50, (900.0,)),
]


async def seed(path: Path) -> None:
    """Write the calls above through the store's own writer, as the server would."""
    store = CallStore(f"sqlite+aiosqlite:///{path}", path.parent)
    await store.start()
    registry = CallRegistry(sink=store, language="en")
    for sid, caller, called, call_path, outcome, hours, v2vs in CALLS:
        started = NOW - hours * 3600
        record = CallRecord(
            call_sid=sid,
            stream_sid="MZ" + sid,
            agent="front-desk",
            path=call_path,
            caller=caller,
            called=called,
            started_at=started,
        )
        registry.begin(record)
        for i, v2v in enumerate(v2vs, 1):
            text = HINDI if sid == "CA04" else f"question {i}"
            store.turn_added(
                record,
                TurnRecord(
                    index=i,
                    caller_text=text,
                    agent_text="answer",
                    heard_text="answer",
                    stages_ms={"turn_detected": 300.0, "stt_final": v2v - 300, "first_frame_sent": v2v},
                    language="en",
                ),
                started + 10 * i,
            )
        record.event("dtmf", digit="2")
        record.outcome, record.ended_at = outcome, started + 120
        registry.end(record)
    assert await store.writer.drained(10)
    await store.stop()


@pytest.fixture
def api_server(make_server, tmp_path):
    database = tmp_path / "seeded" / "voxline.db"
    database.parent.mkdir()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(seed(database))
    finally:
        loop.close()
    return listening(make_server(database_url=f"sqlite:///{database}", retention_days=0))


def listening(server, timeout_s: float = 10.0):
    """A server sharing loaded models returns before uvicorn listens: wait for the port."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            httpx.get(server.url + "/healthz", timeout=1)
            return server
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the server did not start listening"
            time.sleep(0.05)


async def get(server, url: str, **params) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH) as client:
        return await client.get(url, params=params)


async def test_the_api_needs_its_token_and_is_off_without_one(api_server):
    async with httpx.AsyncClient(base_url=api_server.url) as client:
        for path in ("/api/calls", "/api/calls/CA01", "/api/live", "/api/stats"):
            assert (await client.get(path)).status_code == 401
            assert (await client.get(path, headers={"Authorization": "Bearer wrong"})).status_code == 401
            assert (await client.get(path, headers=AUTH)).status_code == 200, path
        assert (await client.delete("/api/callers/+1", headers={"Authorization": "Bearer x"})).status_code == 401
        api_server.services.settings.api_token = SecretStr("")
        try:
            for path in ("/api/calls", "/api/live", "/api/stats"):
                assert (await client.get(path, headers=AUTH)).status_code == 404
            assert (await client.delete("/api/callers/+15550001111", headers=AUTH)).status_code == 404
        finally:
            api_server.services.settings.api_token = SecretStr(API_TOKEN)


async def test_calls_are_paged_newest_first(api_server):
    first = (await get(api_server, "/api/calls", limit=3)).json()
    assert first["total"] == 7 and first["limit"] == 3 and first["offset"] == 0
    assert [c["call_sid"] for c in first["calls"]] == ["CA01", "CA02", "CA03"]
    rest = (await get(api_server, "/api/calls", limit=3, offset=3)).json()
    assert [c["call_sid"] for c in rest["calls"]] == ["CA04", "CA05", "CA06"]
    last = (await get(api_server, "/api/calls", limit=3, offset=6)).json()
    assert [c["call_sid"] for c in last["calls"]] == ["CA07"]
    one = first["calls"][0]
    assert one["turn_count"] == 2 and one["v2v_p50_ms"] == 800.0 and one["outcome"] == "completed"
    assert set(one) == {
        "call_sid",
        "stream_sid",
        "path",
        "agent",
        "language",
        "caller",
        "called",
        "started_at",
        "ended_at",
        "outcome",
        "turn_count",
        "v2v_p50_ms",
    }
    assert (await get(api_server, "/api/calls", limit=0)).status_code == 422
    assert (await get(api_server, "/api/calls", limit=501)).status_code == 422


async def test_calls_are_filtered(api_server):
    async def sids(**params) -> list[str]:
        body = (await get(api_server, "/api/calls", **params)).json()
        assert body["total"] == len(body["calls"])
        return [c["call_sid"] for c in body["calls"]]

    assert await sids(number="0001111") == ["CA01", "CA03", "CA06"]  # part of the caller
    assert await sids(number="0002222") == ["CA02"]
    assert await sids(number="5550002") == ["CA02", "CA03", "CA05"]  # CA03 and CA05 called +15005550002
    assert await sids(number="+1500555000") == ["CA01", "CA02", "CA03", "CA04", "CA05", "CA06", "CA07"]  # called
    assert await sids(number="%") == []  # a wildcard is a character
    assert await sids(outcome="completed") == ["CA01", "CA02", "CA04", "CA07"]
    assert await sids(path="recording") == ["CA02"]
    assert await sids(since=NOW - 4 * 3600) == ["CA01", "CA02", "CA03"]
    assert await sids(since=NOW - 40 * 3600, until=NOW - 4 * 3600) == ["CA04", "CA05", "CA06"]
    assert await sids(number="1111", outcome="failed") == ["CA06"]


async def test_one_call_with_turns_and_events(api_server):
    call = (await get(api_server, "/api/calls/CA04")).json()
    assert call["caller"] == "+919876543210" and call["turn_count"] == 3
    assert [t["index"] for t in call["turns"]] == [1, 2, 3]
    assert call["turns"][0]["caller_text"] == HINDI  # Devanagari intact through the store and JSON
    assert call["turns"][0]["stages_ms"] == {"turn_detected": 300.0, "stt_final": 700.0, "first_frame_sent": 1000.0}
    assert set(call["turns"][0]) == {
        "index",
        "started_at",
        "caller_text",
        "agent_text",
        "heard_text",
        "interrupted",
        "failed",
        "language",
        "stt_early",
        "stages_ms",
        "outcome",
        "end_reason",
        "kind",
    }
    assert (call["turns"][0]["outcome"], call["turns"][0]["end_reason"], call["turns"][0]["kind"]) == (
        "done",
        "",
        "answer",
    )
    assert call["events"] == [{"at": call["events"][0]["at"], "kind": "dtmf", "details": {"digit": "2"}}]
    assert (await get(api_server, "/api/calls/CA404")).status_code == 404


async def test_stats_over_a_period_with_a_series(api_server):
    body = (await get(api_server, "/api/stats", since=NOW - 6 * 3600, until=NOW, bucket_s=3600)).json()
    assert body["calls"] == 4 and body["turns"] == 7
    assert body["by_outcome"] == {"completed": 3, "caller-silent": 1}
    v2v = [700.0, 900.0, 2100.0, 650.0, 1000.0, 1100.0, 1200.0]
    assert body["voice_to_voice"] == {
        "count": 7,
        "p50": queries.percentile(v2v, 50),
        "p95": queries.percentile(v2v, 95),
        "p99": queries.percentile(v2v, 99),
    }
    assert body["voice_to_voice"]["p50"] == 1000.0
    assert body["stages"]["first_frame_sent"] == body["voice_to_voice"]
    assert body["stages"]["turn_detected"]["p50"] == 300.0
    assert body["stages"]["llm_first_token"] == {"count": 0, "p50": None, "p95": None, "p99": None}
    series = body["series"]
    assert len(series) == 6 and series[0]["start"] == NOW - 6 * 3600
    assert [p["start"] for p in series] == sorted(p["start"] for p in series)
    assert [p["calls"] for p in series] == [0, 1, 0, 1, 1, 1]  # 5 h, 3 h, 2 h, 1 h ago
    assert series[-1]["turns"] == 2 and series[-1]["v2v_p50"] == 800.0 and series[-1]["v2v_p95"] == 890.0
    assert series[0]["v2v_p50"] is None
    default = (await get(api_server, "/api/stats")).json()  # the last 24 hours by hour
    assert default["calls"] == 4 and len(default["series"]) == 24
    assert (await get(api_server, "/api/stats", since=NOW, until=NOW - 1)).status_code == 422
    assert (await get(api_server, "/api/stats", since=0, until=NOW, bucket_s=1)).status_code == 422


async def test_forgetting_a_caller_over_the_api(api_server):
    async with httpx.AsyncClient(base_url=api_server.url, headers=AUTH) as client:
        deleted = await client.delete("/api/callers/+15550001111")
        assert deleted.status_code == 200 and deleted.json() == {"deleted_calls": 3}
        for sid in ("CA01", "CA03", "CA06"):
            assert (await client.get(f"/api/calls/{sid}")).status_code == 404
        assert (await client.get("/api/calls")).json()["total"] == 4
        assert (await client.delete("/api/callers/+15550001111")).json() == {"deleted_calls": 0}


async def test_the_openapi_schema_documents_the_responses(api_server):
    async with httpx.AsyncClient(base_url=api_server.url) as client:
        assert (await client.get("/openapi.json")).status_code == 401  # the API's map, for its users only
        assert (await client.get("/docs")).status_code == 404  # the page is for --dev
        schema = (await client.get("/openapi.json", headers=AUTH)).json()
    models = schema["components"]["schemas"]
    assert {"CallPage", "CallSummary", "CallDetail", "Turn", "Event", "LiveCalls", "Stats", "DeletedCalls"} <= set(
        models
    )
    assert set(models["CallSummary"]["properties"]) >= {"call_sid", "turn_count", "v2v_p50_ms"}
    ok = schema["paths"]["/api/calls"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/CallPage")


async def test_retention_deletes_old_calls_at_start_up(make_server, tmp_path):
    database = tmp_path / "old" / "voxline.db"
    database.parent.mkdir()
    await seed(database)  # CA01…CA07 are 1 to 50 hours old
    server = listening(make_server(database_url=f"sqlite:///{database}", retention_days=1))
    deadline = time.monotonic() + 15
    while (body := (await get(server, "/api/calls")).json())["total"] != 4:
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.2)
    assert [c["call_sid"] for c in body["calls"]] == ["CA01", "CA02", "CA03", "CA04"]


def test_forget_caller_command_works_without_the_server(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(seed(data / "voxline.db"))
    finally:
        loop.close()
    env = {**os.environ, "VOXLINE_DATA_DIR": str(data)}
    env.pop("VOXLINE_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "voxline", "forget-caller", "+15550001111"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "deleted 3 calls" in done.stdout
    import sqlite3

    with sqlite3.connect(data / "voxline.db") as connection:
        left = [row[0] for row in connection.execute("SELECT call_sid FROM calls ORDER BY call_sid")]
        assert left == ["CA02", "CA04", "CA05", "CA07"]
        assert (
            connection.execute("SELECT count(*) FROM turns WHERE call_sid IN ('CA01','CA03','CA06')").fetchone()[0] == 0
        )
