"""The softphone's audio code, run in headless Chromium without a server or models.

The page's μ-law encoder must give audioop's bytes; the capture worklet must keep the telephone
band and reject what would alias; the player must play frames at the audio clock, report each
mark when the audio before it has played, and drop queued audio on ``clear``.
"""

from __future__ import annotations

import functools
import http.server
import threading
from importlib import resources

import numpy as np
import pytest

from test_browser import chromium_path
from voxline.audio import mulaw

LINE_RATE = 8000


@pytest.fixture(scope="module")
def static_url():
    """The package's static files on a loopback port (a secure context, as AudioWorklet needs)."""
    folder = resources.files("voxline.web") / "static"
    handler = functools.partial(_QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    thread.join(5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture(scope="module")
async def page(static_url):
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), args=["--autoplay-policy=no-user-gesture-required"]
        )
        page = await browser.new_page()
        await page.goto(static_url + "/favicon.svg")
        yield page
        await browser.close()


def decode(frames: list[list[int]]) -> np.ndarray:
    return mulaw.decode(bytes(b for frame in frames for b in frame)).astype(np.float64)


def level_db(samples: np.ndarray, reference: float) -> float:
    return 20 * np.log10(np.sqrt(np.mean(samples**2)) / reference + 1e-12)


def peak_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / LINE_RATE)[np.argmax(spectrum)])


async def test_ulaw_codec_matches_audioop(page):
    codes = await page.evaluate("""async () => {
        const { linearToUlaw, ULAW_TO_FLOAT } = await import("/ulaw.js");
        const encoded = [];
        for (let v = -32768; v < 32768; v++) encoded.push(linearToUlaw(v / 32768));
        return { encoded, decoded: Array.from(ULAW_TO_FLOAT, (x) => Math.round(x * 32768)) };
    }""")
    every_sample = np.arange(-32768, 32768, dtype=np.int16)
    assert bytes(codes["encoded"]) == mulaw.encode(every_sample)
    assert codes["decoded"] == mulaw.decode(bytes(range(256))).tolist()


CAPTURE = """async ([rate, frequency]) => {
    const context = new OfflineAudioContext(1, rate, rate);  // one second
    await context.audioWorklet.addModule("/softphone-worklet.js");
    const capture = new AudioWorkletNode(context, "ulaw-capture", { numberOfInputs: 1, numberOfOutputs: 0 });
    const frames = [];
    capture.port.onmessage = (event) => frames.push(Array.from(event.data.ulaw));
    const tone = new OscillatorNode(context, { frequency });
    tone.connect(new GainNode(context, { gain: 0.5 })).connect(capture);
    tone.start();
    await context.startRendering();
    await new Promise((resolve) => setTimeout(resolve, 200));  // the last frames are still in the port
    return frames;
}"""


@pytest.mark.parametrize("rate", [48000, 44100])
async def test_capture_keeps_the_telephone_band_and_rejects_aliases(page, rate):
    reference = 0.5 * 32768 / np.sqrt(2)  # the tone's RMS
    for frequency, low_db, high_db in ((1000, -1.0, 0.5), (3000, -1.5, 0.5), (6000, -np.inf, -40)):
        frames = await page.evaluate(CAPTURE, [rate, frequency])
        assert len(frames) in (49, 50) and all(len(f) == 160 for f in frames), len(frames)
        line = decode(frames)[800:]  # past the filter's start-up
        assert low_db <= level_db(line, reference) <= high_db, (rate, frequency, level_db(line, reference))
        if frequency < 4000:
            assert abs(peak_hz(line) - frequency) < 20, (rate, frequency, peak_hz(line))


PLAY = """async ([tone, gapMs]) => {
    const context = new AudioContext({ sampleRate: 48000 });
    await context.audioWorklet.addModule("/softphone-worklet.js");
    const player = new AudioWorkletNode(context, "ulaw-player", { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1] });
    const capture = new AudioWorkletNode(context, "ulaw-capture", { numberOfInputs: 1, numberOfOutputs: 0 });
    player.connect(capture);  // what the player plays, captured back as 8 kHz μ-law
    const frames = [];
    capture.port.onmessage = (event) => frames.push({ ulaw: Array.from(event.data.ulaw), at: performance.now() });
    const events = [];
    player.port.onmessage = (event) => {
        if (event.data.type !== "progress") events.push({ ...event.data, at: performance.now() });
    };
    await context.resume();
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    await sleep(100);
    const send = (items) => items.forEach((f) => player.port.postMessage({ type: "media", ulaw: new Uint8Array(f) }));
    const t0 = performance.now();
    send(tone.slice(0, 30));                                   // 600 ms
    player.port.postMessage({ type: "mark", name: "a" });
    send(tone.slice(30, 50));                                  // 400 ms
    player.port.postMessage({ type: "mark", name: "b" });
    await sleep(1000 + gapMs);
    const t1 = performance.now();
    send(tone.slice(0, 50));                                   // 1 s, cut after 300 ms
    player.port.postMessage({ type: "mark", name: "c" });
    await sleep(300);
    const t2 = performance.now();
    player.port.postMessage({ type: "clear" });
    await sleep(500);
    await context.close();
    return { frames: frames.map((f) => ({ ulaw: f.ulaw, at: f.at - t0 })), events: events.map((e) => ({ ...e, at: e.at - t0 })),
             secondAt: t1 - t0, clearAt: t2 - t0 };
}"""


async def test_player_plays_in_time_reports_marks_and_clears(page):
    t = np.arange(LINE_RATE) / LINE_RATE
    tone = mulaw.encode((0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16))
    frames = [list(tone[i : i + 160]) for i in range(0, len(tone), 160)]
    result = await page.evaluate(PLAY, [frames, 300])
    events = result["events"]
    played = {e["name"]: e["at"] for e in events if e["type"] == "played"}
    cleared = [e for e in events if e["type"] == "cleared"]

    # Marks come back when the audio before them has played, on the audio clock (±150 ms of jitter).
    assert list(played)[:2] == ["a", "b"], events
    assert 600 - 50 <= played["a"] <= 600 + 150, played
    assert 1000 - 50 <= played["b"] <= 1000 + 150, played
    # On clear, the pending mark is reported at once and not played later.
    assert "c" not in played and [e["marks"] for e in cleared] == [["c"]], events
    assert cleared[0]["at"] - result["clearAt"] < 100, (cleared, result["clearAt"])

    # What was played is the tone, at its level, and nothing plays after the clear.
    reference = 0.3 * 32767 / np.sqrt(2)
    during = decode([f["ulaw"] for f in result["frames"] if 200 <= f["at"] <= 900])
    assert abs(level_db(during, reference)) < 1.5 and abs(peak_hz(during) - 440) < 20
    after = decode([f["ulaw"] for f in result["frames"] if f["at"] > result["clearAt"] + 200])
    assert after.size and level_db(after, reference) < -40, level_db(after, reference)
