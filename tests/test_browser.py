"""The softphone and the dashboard in a real browser: headless Debian Chromium driven by Playwright.

Chromium's fake microphone plays a WAV of real human speech (LibriVox), so the call goes through
the page's AudioWorklet capture (downsampled to 8 kHz μ-law), the softphone WebSocket, the same
call session as a Twilio call, and back through the page's player, which echoes the marks.
Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import API_TOKEN
from voxline.audio.pcm import read_wav, resample, write_wav

pytestmark = pytest.mark.e2e

CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
CAPTURE_RATE = 48000  # Chromium's fake capture reads 16-bit PCM WAV and resamples it itself
LEAD_SILENCE_S = 5.0  # the greeting plays first; speaking over it would be a barge-in
TAIL_SILENCE_S = 30.0


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def chromium_path() -> str:
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("Chromium is missing: run `make test` (scripts/install-test-data.sh installs it)")
    return found


def caller_wav(folder: Path, utterance: Path, lead_silence_s: float) -> Path:
    """What the fake microphone hears: silence, one LibriVox utterance, then silence for the reply."""
    speech, rate = read_wav(utterance)
    speech = resample(speech, rate, CAPTURE_RATE)
    silence = lambda seconds: np.zeros(int(seconds * CAPTURE_RATE), dtype=np.int16)  # noqa: E731
    path = folder / f"caller-{utterance.stem}-{lead_silence_s:g}s.wav"
    write_wav(path, np.concatenate([silence(lead_silence_s), speech, silence(TAIL_SILENCE_S)]), CAPTURE_RATE)
    return path


@pytest.fixture(scope="module")
async def launch(tmp_path_factory):
    """Start headless Chromium whose fake microphone plays a WAV (a flag of the browser process)."""
    from playwright.async_api import async_playwright

    browsers = []
    async with async_playwright() as playwright:

        async def start(wav: Path):
            browser = await playwright.chromium.launch(
                executable_path=chromium_path(),
                args=[
                    "--use-fake-ui-for-media-stream",
                    "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-audio-capture={wav}%noloop",  # play once, then silence
                    "--autoplay-policy=no-user-gesture-required",
                ],
            )
            browsers.append(browser)
            return browser

        yield start
        for browser in browsers:
            await browser.close()


@pytest.fixture(scope="module")
async def browser(launch, librivox, tmp_path_factory):
    """A browser whose caller waits for the greeting, then says one sentence."""
    return await launch(caller_wav(tmp_path_factory.mktemp("browser"), librivox["0880"], LEAD_SILENCE_S))


@dataclass
class SoftphoneCall:
    call_sid: str
    stats: dict
    screenshot: Path
    transcribed: str  # the caller bubble shown at transcription time


async def _enter_token(page, value: str = API_TOKEN) -> None:
    await page.locator("#token-input").fill(value)
    await page.locator("#token-form button[type=submit]").click()


async def _call_page(browser, server, console: list[str]):
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    await page.goto(server.url + "/phone")
    await _enter_token(page)  # the server has VOXLINE_API_TOKEN: the page asks for it once
    await page.locator("#call-button").click()
    return context, page


@pytest.fixture(scope="module")
async def softphone_call(server, browser, artifacts) -> SoftphoneCall:
    """One conversation placed from /phone: greeting, the caller's sentence, the agent's answer.

    While it is in progress, the dashboard (another browser context) lists it among the live calls.
    """
    console: list[str] = []
    context, page = await _call_page(browser, server, console)
    try:
        await page.locator(".bubble.greeting").wait_for(timeout=20_000)
        call_sid = await page.evaluate("() => window.voxlineSoftphone.callSid")
        await _see_live_call(browser, server, call_sid, artifacts)
        # The caller's words show as soon as they are transcribed, before the reply has played.
        pending = page.locator(".bubble.caller.pending").first
        await pending.wait_for(timeout=60_000)
        transcribed = await pending.inner_text()
        await page.locator(".note.latency").first.wait_for(timeout=60_000)
        assert await page.locator(".bubble.caller.pending").count() == 0  # replaced by the finished turn
        stats = await page.evaluate(
            "() => ({...window.voxlineSoftphone.stats, callSid: window.voxlineSoftphone.callSid})"
        )
        screenshot = artifacts / "softphone_call.png"
        await page.screenshot(path=str(screenshot), full_page=True)
        await page.locator("#call-button").click()  # hang up
        await page.locator("#call-state-text", has_text="Call ended").wait_for(timeout=10_000)
    except Exception:
        await page.screenshot(path=str(artifacts / "softphone_failure.png"), full_page=True)
        print("\n".join(console))
        raise
    finally:
        await context.close()
    assert not [line for line in console if line.startswith(("error", "warning"))], console
    return SoftphoneCall(call_sid=stats.pop("callSid"), stats=stats, screenshot=screenshot, transcribed=transcribed)


async def _see_live_call(browser, server, call_sid: str, artifacts: Path) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    await context.add_init_script(f"localStorage.setItem('voxline.apiToken', {API_TOKEN!r})")  # signed in before
    page = await context.new_page()
    try:
        await page.goto(server.url + "/dashboard")
        await page.locator(f'#live-calls-table tbody tr[data-call="{call_sid}"]').wait_for(timeout=10_000)
        assert int(await page.locator("#live-count").inner_text()) >= 1
        await page.screenshot(path=str(artifacts / "dashboard_live.png"), full_page=True)
    finally:
        await context.close()


async def test_softphone_holds_a_conversation(server, softphone_call):
    stats = softphone_call.stats
    # The microphone was sent as 20 ms frames, the agent's audio was played, and its marks echoed.
    assert stats["framesSent"] > 200, stats
    assert stats["framesReceived"] > 100 and stats["framesPlayed"] > 100, stats
    assert stats["marksReceived"] >= 2 and stats["marksEchoed"] >= 2, stats
    assert stats["turns"] >= 1, stats

    record = await server.wait_record_closed(softphone_call.call_sid)
    assert record.path == "softphone" and record.caller == "softphone"
    first = record.turns[0]
    assert {"young", "man"} <= words(first.caller_text), first.caller_text
    assert words(softphone_call.transcribed) == words(first.caller_text) | {"caller"}
    assert words(first.agent_text), "the agent said nothing"
    assert first.stages_ms["first_frame_sent"] is not None
    assert first.stages_ms["first_mark_echoed"] is not None  # the page echoed the mark after playing it
    assert record.outcome == "completed"
    assert softphone_call.screenshot.stat().st_size > 10_000


async def test_dashboard_shows_the_call_with_its_turns(server, browser, softphone_call, artifacts):
    record = await server.wait_record_closed(softphone_call.call_sid)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        await page.goto(server.url + "/dashboard")
        await _enter_token(page, "not-the-token")
        await page.locator("#token-error", has_text="refused").wait_for(timeout=10_000)
        await _enter_token(page)
        await page.locator("#recent-calls-table tbody tr", has_text="softphone").first.wait_for(timeout=10_000)
        # Latency percentiles over time, from /api/stats: this call's turn is in the last bucket.
        assert await page.locator('#latency-chart path[data-series="p50"]').count() == 1
        assert await page.locator('#stages-table tr[data-stage="first_frame_sent"]').count() == 1
        await page.screenshot(path=str(artifacts / "dashboard_overview.png"), full_page=True)

        await page.locator("#nav a", has_text="Calls").click()
        filters = page.locator("#filters")
        await filters.locator("input[name=number]").fill("no-such-number")
        await filters.locator("button[type=submit]").click()
        await page.locator(".empty", has_text="No call matches").wait_for(timeout=10_000)
        await filters.locator("input[name=number]").fill("")
        await filters.locator("select[name=path]").select_option("softphone")
        await filters.locator("button[type=submit]").click()
        row = page.locator(f'#calls-table tbody tr[data-call="{softphone_call.call_sid}"]')
        await row.wait_for(timeout=10_000)
        assert "path=softphone" in page.url
        await page.screenshot(path=str(artifacts / "dashboard_calls.png"), full_page=True)
        await row.click()

        await page.locator(".bubble.caller").first.wait_for(timeout=10_000)
        caller_text = await page.locator(".bubble.caller").first.inner_text()
        assert {"young", "man"} <= words(caller_text), caller_text
        agent_texts = await page.locator(".bubble.agent").all_inner_texts()
        assert any(words(record.turns[0].agent_text) & words(text) for text in agent_texts), agent_texts
        # Each turn's waterfall draws a bar for every stage the turn reached.
        waterfall = page.locator(".turn .waterfall").first
        for stage in ("stt_final", "llm_first_token", "first_audio", "first_frame_sent", "first_mark_echoed"):
            assert await waterfall.locator(f'[data-stage="{stage}"] rect').count() == 1, stage
        await page.screenshot(path=str(artifacts / "dashboard_call.png"), full_page=True)
    finally:
        await context.close()


async def test_softphone_barge_in_clears_the_agents_audio(server, launch, librivox, tmp_path, artifacts):
    """The caller talks over the greeting: the server sends clear, the page drops what is queued."""
    browser = await launch(caller_wav(tmp_path, librivox["0930"], lead_silence_s=1.5))
    console: list[str] = []
    context, page = await _call_page(browser, server, console)
    try:
        await page.locator(".bubble.caller").first.wait_for(timeout=60_000)
        stats = await page.evaluate(
            "() => ({...window.voxlineSoftphone.stats, callSid: window.voxlineSoftphone.callSid})"
        )
        await page.screenshot(path=str(artifacts / "softphone_barge_in.png"), full_page=True)
        await page.locator("#call-button").click()
    except Exception:
        print("\n".join(console))
        raise
    finally:
        await context.close()
    assert stats["clears"] >= 1, stats
    assert stats["marksEchoed"] == stats["marksReceived"], stats  # a clear echoes the pending marks
    record = await server.wait_record_closed(stats["callSid"])
    assert any(event["kind"] == "barge-in" for event in record.events), record.events
    assert {"amiable", "himself"} & words(record.turns[0].caller_text), record.turns[0].caller_text
