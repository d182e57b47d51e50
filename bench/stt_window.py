"""Does Whisper's "fit" encoder window keep the words of the standard 30-second window? And how much faster is it?

What it measures
    ``WhisperSTT`` is loaded exactly as the server loads it (Whisper tiny.en, int8, 2 threads,
    one model pool worker) and every clip goes through a G.711 μ-law round trip first, because
    that is the audio a Twilio call delivers. The same instance runs in both modes by switching its
    ``.window`` attribute: ``"full"`` (faster-whisper's standard decode over a 30-second mel window)
    and ``"fit"`` (the encoder sees only the utterance plus 1 s of padding).

    1. Accuracy on real read speech: word error rate (WER) on the five LibriVox utterances that
       ship with pocketsphinx, against their reference transcripts. WER is a word-level
       Levenshtein distance over normalised text (lowercase, hyphens to spaces, punctuation
       removed), summed over the utterances and divided by the reference word count.
    2. Agreement on telephone prompts: the first 40 Asterisk "Allison" prompts (sorted by name)
       that last 1.5–6 s, transcribed in both modes; the WER of "fit" scored against "full",
       and every prompt whose normalised transcripts differ.
    3. Latency: wall time of one ``transcribe_blocking`` call (resampling included), with each
       LibriVox utterance transcribed ``--repeats`` times (default 3) per mode. The two modes are
       interleaved utterance by utterance so that background load hits both alike. Reported as
       p50 and p95 in ms (linear interpolation between samples).
    4. Non-speech: 2 s of digital silence and 2 s of white noise at about −26 dBFS must come back
       as empty text in both modes; whatever they return is recorded.

Why
    The encoder is most of Whisper's cost on a short phone turn, and in the 30-second window most
    of what it encodes is padding. Cutting the window is only worth it if the words stay the same
    on real speech and silence or line noise still transcribes to nothing (a hallucinated "Thank
    you." would start a reply nobody asked for). This script checks both, on the audio path the
    server uses.

Run it with ``.venv/bin/python bench/stt_window.py`` (about a minute on two cores); it prints a
summary table and writes ``bench/results/stt_window.json`` with every transcript and timing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from voxline.audio import mulaw
from voxline.audio.pcm import TELEPHONY_RATE, load_as_telephony, rms_dbfs
from voxline.benchmarks.report import machine
from voxline.engine import files
from voxline.providers.pool import ModelPool
from voxline.stt.whisper import WhisperSTT, Window

LIBRIVOX_DIR = Path("/usr/share/pocketsphinx/test/data/librivox")
PROMPTS_DIR = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
PROMPT_MIN_S = 1.5
PROMPT_MAX_S = 6.0
PROMPT_COUNT = 40
NONSPEECH_S = 2.0
NOISE_DBFS = -26.0
NOISE_SEED = 0
THREADS = 2
LANGUAGE = "en"
WINDOWS: tuple[Window, ...] = ("full", "fit")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "stt_window.json"

_TRANSCRIPT_LINE = re.compile(r"^<s>\s*(?P<text>.*?)\s*</s>\s*\((?P<stem>[^)]+)\)\s*$")
_NOT_WORD = re.compile(r"[^a-z0-9\s]")


# ---------------------------------------------------------------------------- scoring


def normalise(text: str) -> list[str]:
    """Lowercase, hyphens and dashes to spaces, other punctuation (apostrophes too) removed; → words."""
    text = text.lower()
    text = re.sub(r"[-‐‑‒–—]", " ", text)
    text = text.replace("’", "'")
    return _NOT_WORD.sub("", text).split()


def word_edits(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level Levenshtein distance: substitutions + deletions + insertions."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1]


def wer(edits: int, reference_words: int) -> float | None:
    return edits / reference_words if reference_words else None


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q))


# ---------------------------------------------------------------------------- audio


def phone_line(pcm8k: np.ndarray) -> np.ndarray:
    """What the server receives after the caller's audio crossed a μ-law phone line."""
    return mulaw.decode(mulaw.encode(pcm8k))


def librivox_references() -> dict[str, str]:
    references: dict[str, str] = {}
    for line in (LIBRIVOX_DIR / "transcription").read_text(encoding="utf-8").splitlines():
        if match := _TRANSCRIPT_LINE.match(line.strip()):
            references[match["stem"]] = match["text"]
    return references


def select_prompts() -> list[tuple[Path, np.ndarray]]:
    """Sorted by file name; those lasting PROMPT_MIN_S–PROMPT_MAX_S; the first PROMPT_COUNT."""
    chosen: list[tuple[Path, np.ndarray]] = []
    for path in sorted(PROMPTS_DIR.glob("*.wav")):
        pcm = load_as_telephony(path)
        if PROMPT_MIN_S <= pcm.size / TELEPHONY_RATE <= PROMPT_MAX_S:
            chosen.append((path, pcm))
            if len(chosen) == PROMPT_COUNT:
                break
    return chosen


def white_noise(seconds: float, dbfs: float, seed: int) -> np.ndarray:
    rms = 32768.0 * 10.0 ** (dbfs / 20.0)
    noise = np.random.default_rng(seed).normal(0.0, rms, int(seconds * TELEPHONY_RATE))
    return np.clip(np.round(noise), -32768, 32767).astype(np.int16)


# ---------------------------------------------------------------------------- results


@dataclass
class Utterance:
    file: str
    duration_s: float
    reference: str
    reference_words: int
    text: dict[str, str] = field(default_factory=dict)
    edits: dict[str, int] = field(default_factory=dict)
    wer: dict[str, float | None] = field(default_factory=dict)
    times_ms: dict[str, list[float]] = field(default_factory=dict)
    stable_across_repeats: dict[str, bool] = field(default_factory=dict)


@dataclass
class Prompt:
    file: str
    duration_s: float
    full: str
    fit: str
    full_words: int
    edits: int
    differ: bool
    time_ms: dict[str, float]


@dataclass
class NonSpeech:
    kind: str
    duration_s: float
    level_dbfs: float | None
    text: dict[str, str]
    empty: dict[str, bool]


class Transcriber:
    """One WhisperSTT instance whose window is switched per call; every call is timed."""

    def __init__(self) -> None:
        self.stt = WhisperSTT(files.whisper_tiny_en_dir(), ModelPool(1), THREADS)
        self.stt.warm_up()

    def __call__(self, pcm8k: np.ndarray, window: Window) -> tuple[str, float]:
        self.stt.window = window
        start = time.perf_counter()
        text = self.stt.transcribe_blocking(pcm8k, LANGUAGE)
        return text, (time.perf_counter() - start) * 1000.0


def run_librivox(transcribe: Transcriber, repeats: int) -> list[Utterance]:
    references = librivox_references()
    clips = [(path, phone_line(load_as_telephony(path))) for path in sorted(LIBRIVOX_DIR.glob("*.wav"))]
    missing = [path.stem for path, _ in clips if path.stem not in references]
    if missing:
        raise SystemExit(f"no reference transcript for {missing}")
    for window in WINDOWS:  # first call in each mode is not timed
        transcribe(clips[0][1], window)

    utterances: list[Utterance] = []
    for path, pcm in clips:
        reference = references[path.stem]
        utterance = Utterance(path.name, round(pcm.size / TELEPHONY_RATE, 3), reference, len(normalise(reference)))
        texts: dict[str, list[str]] = {window: [] for window in WINDOWS}
        for repeat in range(repeats):
            order = WINDOWS if repeat % 2 == 0 else WINDOWS[::-1]
            for window in order:
                text, ms = transcribe(pcm, window)
                texts[window].append(text)
                utterance.times_ms.setdefault(window, []).append(round(ms, 1))
        for window in WINDOWS:
            text = texts[window][0]
            utterance.text[window] = text
            utterance.edits[window] = word_edits(normalise(reference), normalise(text))
            utterance.wer[window] = wer(utterance.edits[window], utterance.reference_words)
            utterance.stable_across_repeats[window] = len(set(texts[window])) == 1
        utterances.append(utterance)
        print(
            f"  {path.stem}: full {utterance.edits['full']} / fit {utterance.edits['fit']} errors "
            f"of {utterance.reference_words} words",
            flush=True,
        )
    return utterances


def run_prompts(transcribe: Transcriber) -> list[Prompt]:
    prompts: list[Prompt] = []
    for path, pcm in select_prompts():
        line = phone_line(pcm)
        full, full_ms = transcribe(line, "full")
        fit, fit_ms = transcribe(line, "fit")
        edits = word_edits(normalise(full), normalise(fit))
        prompts.append(
            Prompt(
                path.name,
                round(pcm.size / TELEPHONY_RATE, 3),
                full,
                fit,
                len(normalise(full)),
                edits,
                normalise(full) != normalise(fit),
                {"full": round(full_ms, 1), "fit": round(fit_ms, 1)},
            )
        )
    print(f"  {len(prompts)} prompts, {sum(p.differ for p in prompts)} differ", flush=True)
    return prompts


def run_nonspeech(transcribe: Transcriber) -> list[NonSpeech]:
    samples = int(NONSPEECH_S * TELEPHONY_RATE)
    clips = {
        "silence": np.zeros(samples, dtype=np.int16),
        "white_noise": white_noise(NONSPEECH_S, NOISE_DBFS, NOISE_SEED),
    }
    results: list[NonSpeech] = []
    for kind, pcm in clips.items():
        line = phone_line(pcm)
        level = rms_dbfs(line)
        texts = {window: transcribe(line, window)[0] for window in WINDOWS}
        results.append(
            NonSpeech(
                kind,
                NONSPEECH_S,
                round(level, 2) if np.isfinite(level) else None,
                texts,
                {window: not normalise(text) for window, text in texts.items()},
            )
        )
    return results


# ---------------------------------------------------------------------------- report


def summarise(utterances: list[Utterance], prompts: list[Prompt], nonspeech: list[NonSpeech]) -> dict[str, Any]:
    reference_words = sum(u.reference_words for u in utterances)
    windows: dict[str, Any] = {}
    for window in WINDOWS:
        times = [ms for u in utterances for ms in u.times_ms[window]]
        edits = sum(u.edits[window] for u in utterances)
        windows[window] = {
            "librivox_errors": edits,
            "librivox_wer": round(edits / reference_words, 4),
            "timed_calls": len(times),
            "p50_ms": round(percentile(times, 50), 1),
            "p95_ms": round(percentile(times, 95), 1),
            "prompts_p50_ms": round(percentile([p.time_ms[window] for p in prompts], 50), 1),
            "nonspeech_all_empty": all(n.empty[window] for n in nonspeech),
        }
    prompt_edits = sum(p.edits for p in prompts)
    prompt_words = sum(p.full_words for p in prompts)
    return {
        "librivox_reference_words": reference_words,
        "windows": windows,
        "agreement": {
            "prompts": len(prompts),
            "fit_vs_full_errors": prompt_edits,
            "full_words": prompt_words,
            "fit_vs_full_wer": round(prompt_edits / prompt_words, 4) if prompt_words else None,
            "identical": sum(not p.differ for p in prompts),
            "differ": [p.file for p in prompts if p.differ],
        },
        "speedup_p50": round(windows["full"]["p50_ms"] / windows["fit"]["p50_ms"], 2),
    }


def table(summary: dict[str, Any]) -> str:
    head = (
        f"{'window':<7} {'LibriVox WER':>13} {'p50 ms':>8} {'p95 ms':>8} {'prompts p50':>12} {'non-speech empty':>17}"
    )
    rows = [
        f"{window:<7} {s['librivox_wer']:>7.1%} ({s['librivox_errors']:>2}) {s['p50_ms']:>8.0f} {s['p95_ms']:>8.0f} "
        f"{s['prompts_p50_ms']:>12.0f} {'yes' if s['nonspeech_all_empty'] else 'NO':>17}"
        for window, s in summary["windows"].items()
    ]
    agreement = summary["agreement"]
    wer_text = f"{agreement['fit_vs_full_wer']:.1%}" if agreement["fit_vs_full_wer"] is not None else "n/a"
    tail = (
        f"fit vs full on {agreement['prompts']} prompts: WER {wer_text} "
        f"({agreement['fit_vs_full_errors']}/{agreement['full_words']} words), "
        f"{agreement['identical']} identical; differ: {', '.join(agreement['differ']) or 'none'}\n"
        f"speed-up (p50, LibriVox): {summary['speedup_p50']}x"
    )
    return "\n".join([head, "-" * len(head), *rows, "", tail])


def main() -> None:
    parser = argparse.ArgumentParser(description="Compare Whisper's fit and full encoder windows.")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each LibriVox utterance per window")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    load_before = os.getloadavg()
    transcribe = Transcriber()
    print("== LibriVox (WER, timing)", flush=True)
    utterances = run_librivox(transcribe, args.repeats)
    print("== Asterisk prompts (fit vs full)", flush=True)
    prompts = run_prompts(transcribe)
    print("== silence and noise", flush=True)
    nonspeech = run_nonspeech(transcribe)
    for item in nonspeech:
        print(f"  {item.kind}: " + ", ".join(f"{w}={t!r}" for w, t in item.text.items()), flush=True)

    summary = summarise(utterances, prompts, nonspeech)
    print()
    print(table(summary))

    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine("faster-whisper", "ctranslate2"),
        "load_average_1m": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
        "command": shlex.join([sys.executable, *sys.argv]),
        "settings": {
            "model": transcribe.stt.name,
            "threads": THREADS,
            "language": LANGUAGE,
            "repeats": args.repeats,
            "channel": "G.711 mu-law round trip at 8 kHz",
            "prompt_selection": f"sorted, {PROMPT_MIN_S}-{PROMPT_MAX_S} s, first {PROMPT_COUNT}",
            "noise": {"dbfs": NOISE_DBFS, "seed": NOISE_SEED, "seconds": NONSPEECH_S},
            "percentiles": "numpy linear interpolation",
        },
        "summary": summary,
        "librivox": [asdict(u) for u in utterances],
        "prompts": [asdict(p) for p in prompts],
        "nonspeech": [asdict(n) for n in nonspeech],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out} and {plot(result, args.out.with_suffix('.png'))}")


def plot(result: dict, path: Path) -> Path:
    """Transcription time per utterance, one curve per encoder window."""
    from voxline.benchmarks.report import plot_distributions

    windows = result["summary"]["windows"]
    return plot_distributions(
        path,
        "Whisper tiny.en: transcription time per LibriVox utterance",
        {window: [ms for row in result["librivox"] for ms in row["times_ms"][window]] for window in windows},
        "ms per utterance",
    )


if __name__ == "__main__":
    main()
