"""The turn-taking corpus: labels that match the audio, levels, splits by source, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from voxline.benchmarks import turn_corpus
from voxline.benchmarks.turn_corpus import FAMILIES, TurnCase, build_cases, material_summary, subset

pytestmark = pytest.mark.unit

RATE = 8000
EXPECT = {
    "pauses": "answer-once",
    "complete": "answer-once",
    "noise": "no-turn",
    "barge-in": "interrupt",
    "echo": "continue",
    "backchannel": "continue",
    "false-interruption": "resume",
}


@pytest.fixture(scope="module")
def cases() -> list[TurnCase]:
    return build_cases()


def _window_db(x: np.ndarray) -> np.ndarray:
    """10 ms window levels in dBFS, computed here independently of the module."""
    n = x.size // 80
    frames = x[: n * 80].astype(np.float64).reshape(n, 80) / 32768.0
    return 10 * np.log10(np.mean(frames * frames, axis=1) + 1e-20)


def _dbfs(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x.astype(np.float64)))) / 32768.0 + 1e-20))


def _speech_dbfs(case: TurnCase) -> float:
    return _dbfs(np.concatenate([case.caller[round(a * RATE) : round(b * RATE)] for a, b in case.speech]))


def _pause_ms(case: TurnCase) -> int:
    return int(case.id.split("/")[3].split("ms")[0])


def test_every_family_in_both_splits_and_the_expected_sizes(cases):
    for family in FAMILIES:
        splits = {c.split for c in cases if c.family == family}
        assert splits == {"tune", "held-out"}, family
    counts = {f: sum(c.family == f for c in cases) for f in FAMILIES}
    assert counts["pauses"] >= 36 and counts["complete"] >= 18 and counts["noise"] >= 18
    assert counts["echo"] == 20 and counts["backchannel"] >= 14 and counts["false-interruption"] >= 10
    assert sum(c.id.startswith("barge-in/echo-") for c in cases) == 8 and counts["barge-in"] >= 22


def test_ids_unique_and_fields_consistent(cases):
    assert len({c.id for c in cases}) == len(cases)
    for c in cases:
        assert c.id.startswith(f"{c.family}/"), c.id
        assert c.expect == EXPECT[c.family], c.id
        assert c.during_agent == (c.family not in ("pauses", "complete", "noise")), c.id
        assert c.source, c.id


def test_audio_is_8khz_int16_and_labels_lie_inside(cases):
    for c in cases:
        assert c.caller.dtype == np.int16 and c.caller.ndim == 1 and c.caller.size > 0, c.id
        assert 0.5 <= c.caller.size / RATE <= 15.0, c.id
        previous_end = 0.0
        for start, end in c.speech:
            assert previous_end <= start < end <= c.caller.size / RATE, c.id
            previous_end = end


def test_everything_is_on_the_phone_band(cases):
    for c in cases:
        power = np.abs(np.fft.rfft(c.caller.astype(np.float64))) ** 2
        freq = np.fft.rfftfreq(c.caller.size, 1 / RATE)
        assert power[freq < 200].sum() < 0.05 * power.sum() and power[freq > 3700].sum() < 0.01 * power.sum(), c.id


def test_pauses_are_labelled_and_measured_in_the_audio(cases):
    pauses = [c for c in cases if c.family == "pauses"]
    assert {_pause_ms(c) for c in pauses} == {300, 400, 500, 600, 700}
    measured = 0
    for c in pauses:
        assert len(c.speech) >= 2, c.id
        gaps = [b[0] - a[1] for a, b in zip(c.speech, c.speech[1:])]
        assert all(abs(g - _pause_ms(c) / 1000) < 0.001 for g in gaps), (c.id, gaps)
        if c.snr_db is not None:
            continue  # at 5–20 dB SNR the pause is not silence to an energy measure
        levels = _window_db(c.caller)
        threshold = _speech_dbfs(c) - 21.0
        for (_, end), (start, _) in zip(c.speech, c.speech[1:]):
            mid = int((end + start) / 2 * 100)
            assert levels[mid] < threshold, c.id
            i, j = mid, mid
            while i > 0 and levels[i - 1] < threshold:
                i -= 1
            while j < levels.size and levels[j] < threshold:
                j += 1
            assert abs((j - i) / 100 - _pause_ms(c) / 1000) <= 0.040, (c.id, (j - i) * 10)
            measured += 1
    assert measured >= 50


def test_speech_levels(cases):
    for c in cases:
        if not c.speech:
            continue
        extra = 10 * np.log10(1 + 10 ** (-c.snr_db / 10)) if c.snr_db is not None else 0.0
        assert -26.3 <= _speech_dbfs(c) <= -17.7 + extra, (c.id, _speech_dbfs(c))


def test_noise_clips_and_silent_callers(cases):
    for c in cases:
        if c.family in ("noise", "echo"):
            assert c.speech == () and c.text == "" and c.synthetic, c.id
        if c.family == "noise":
            assert 1.5 <= c.caller.size / RATE <= 4.0, c.id
            kind = c.id.split("/")[1].rsplit("-", 1)[0]
            if kind in ("white", "pink", "brown"):
                assert -50.5 <= _dbfs(c.caller) <= -29.5, c.id
            if kind in ("door-slam", "dropped-phone"):
                assert -10.0 <= 20 * np.log10(np.abs(c.caller.astype(float)).max() / 32768) <= -2.0, c.id
        if c.family == "echo":
            assert -55.5 <= _dbfs(c.caller) <= -44.5 and c.offset_s == 0.0, c.id
            assert c.echo_gain_db in (-10, -15, -20, -25, -30) and c.echo_delay_ms in (40, 100, 170, 250), c.id
    grid = {(c.echo_gain_db, c.echo_delay_ms) for c in cases if c.family == "echo"}
    assert len(grid) == 20


def test_during_agent_offsets_and_echo_barge_ins(cases):
    ranges = {"barge-in": (0.6, 2.0), "backchannel": (0.8, 2.5), "false-interruption": (0.8, 2.0)}
    for c in cases:
        if c.family in ranges:
            low, high = ranges[c.family]
            assert low <= c.offset_s <= high, c.id
        if c.id.startswith("barge-in/echo-"):
            assert c.echo_gain_db is not None and -20 <= c.echo_gain_db <= -10 and c.echo_delay_ms > 0, c.id


def test_false_interruptions_are_short(cases):
    for c in cases:
        if c.family == "false-interruption":
            loud = np.nonzero(_window_db(c.caller) > -45.0)[0]
            assert loud.size and (loud[-1] - loud[0] + 1) / 100 <= 0.6, c.id


def test_synthetic_flags(cases):
    for c in cases:
        if c.family in ("noise", "echo", "false-interruption") or "espeak-ng" in c.source:
            assert c.synthetic, c.id
        if c.source.startswith(("librivox/", "en/", "es/", "fr/")):
            assert not c.synthetic, c.id
    assert any(c.family == "backchannel" and not c.synthetic for c in cases)


def test_no_source_in_both_splits(cases):
    split_of: dict[str, set[str]] = {}
    for c in cases:
        for source in c.source.split("+"):
            split_of.setdefault(source, set()).add(c.split)
    mixed = {s: v for s, v in split_of.items() if len(v) > 1}
    assert not mixed
    held = sum("held-out" in v for v in split_of.values())
    assert 0.2 <= held / len(split_of) <= 0.5


def test_deterministic(cases):
    again = build_cases()
    assert [c.id for c in again] == [c.id for c in cases]
    for a, b in zip(cases, again):
        assert a == b and np.array_equal(a.caller, b.caller), a.id
    other = {c.id: c for c in build_cases(seed=8)}
    assert any(not np.array_equal(c.caller, other[c.id].caller) for c in cases if c.id in other)


def test_subset_and_summary(cases):
    small = subset(cases, 2)
    for family in FAMILIES:
        picked = [c for c in small if c.family == family]
        assert len(picked) == 2 and {c.split for c in picked} == {"tune", "held-out"}, family
    assert len(subset(cases, 3)) == 3 * len(FAMILIES)
    summary = material_summary(cases)
    assert summary["cases"] == len(cases)
    assert sum(sum(v.values()) for v in summary["per_family"].values()) == len(cases)
    assert summary["synthetic"] + summary["real_speech"] == len(cases)
    assert "librivox/0880" in summary["sources"]


def test_missing_material_names_the_install_script(monkeypatch, tmp_path):
    monkeypatch.setattr(turn_corpus, "LIBRIVOX_DIR", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match=r"scripts/install-test-data\.sh"):
        build_cases()
