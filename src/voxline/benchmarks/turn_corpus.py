"""Labelled turn-taking cases made of real human speech on the telephone band.

Each case is what a caller's microphone sends in one moment of a phone call; the benchmark plays it
against the real server and checks that the agent does what ``expect`` says. The families:

- ``pauses`` (answer once): one turn in 2–3 real speech segments separated by 300–700 ms pauses: a
  LibriVox sentence cut at an internal quiet gap, two sentences in a row, a US phone number read in
  digit groups, words trailing off on "and"/"for". Answering inside a pause is a cut-off.
- ``complete`` (answer once): single complete utterances (LibriVox; Asterisk prompts in en, es, fr).
- ``noise`` (no turn): line hiss, mains hum, a door slam, a cough, traffic, keys, a dropped phone.
- ``barge-in`` (interrupt): a real sentence over the agent's reply, some with the agent's echo.
- ``echo`` (continue): the caller is silent while the agent's own audio comes back down the line.
- ``backchannel`` (continue): "mm-hmm", "okay", "haan"… while the agent talks.
- ``false-interruption`` (resume): a cough, throat clear, door slam, breath or "hmm" over the agent.

Real: LibriVox readings (``pocketsphinx-testdata``) and the Asterisk prompts (Allison in en and es,
June in fr), including Allison's "oh" and "O K" as backchannels. Synthetic (``synthetic=True``):
every noise and non-speech event (numpy), the other backchannels and the "hmm" (espeak-ng: no Debian
package records them). Background added to real speech (line hiss at −62…−52 dBFS, ``+hiss`` in the
id and always there over the agent, or noise at ``snr_db``) is synthetic too, but the speech stays
real, so it does not make the case synthetic.

Splits go by source, never by case: every recording (or synthetic kind) has one split, from its rank
in its pool ordered by CRC-32 (every third is held out), and a case only combines sources of one
split, so nothing tuned on is ever held out. Everything is seeded; nothing is downloaded.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from voxline.audio import mulaw
from voxline.audio.pcm import TELEPHONY_RATE, load_as_telephony, resample

Family = Literal["pauses", "complete", "noise", "barge-in", "echo", "backchannel", "false-interruption"]
Expect = Literal["answer-once", "no-turn", "interrupt", "continue", "resume"]
Split = Literal["tune", "held-out"]
FAMILIES: tuple[Family, ...] = ("pauses", "complete", "noise", "barge-in", "echo", "backchannel", "false-interruption")
EXPECT: dict[str, Expect] = {"noise": "no-turn", "barge-in": "interrupt", "echo": "continue",
                             "backchannel": "continue", "false-interruption": "resume"}  # fmt: skip
Spans = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class TurnCase:
    id: str
    family: Family
    split: Split
    caller: np.ndarray = field(repr=False, compare=False)  # 8 kHz int16, phone band, μ-law round-tripped
    speech: Spans
    text: str
    during_agent: bool
    offset_s: float
    echo_gain_db: float | None = None
    echo_delay_ms: int = 0
    snr_db: float | None = None
    expect: Expect = "answer-once"
    synthetic: bool = False
    source: str = ""


RATE = TELEPHONY_RATE
WIN = RATE // 100  # 10 ms level windows: every piece is cut on this grid, so labels match the audio exactly
QUIET_DB = 15.0  # this far under a recording's active level: a gap inside it, or the edge of its speech
LEAD_S, TAIL_S, WORD_GAP_S = 0.2, 0.4, 0.06
PAUSES_MS = (300, 400, 500, 600, 700)
ECHO_GAINS, ECHO_DELAYS = (-10, -15, -20, -25, -30), (40, 100, 170, 250)
LIBRIVOX_DIR = Path("/usr/share/pocketsphinx/test/data/librivox")
SOUNDS = Path("/usr/share/asterisk/sounds")
FOLDERS = {"en": SOUNDS / "en_US_f_Allison", "es": SOUNDS / "es_MX_f_Allison", "fr": SOUNDS / "fr_CA_f_June"}
PACKAGES = "pocketsphinx-testdata asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav"


def _table(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.strip().splitlines())


# Transcripts: pocketsphinx's, and core-sounds-{en,es,fr}.txt for the prompts that are whole sentences.
LIBRIVOX = _table("""
0870: and mister john dashwood had then leisure to consider how much there might be prudently in his power to do \
for them
0880: he was not an ill disposed young man
0890: unless to be rather cold hearted and rather selfish is to be ill disposed
0920: had he married a more a amiable woman he might have been made still more respectable than he was
0930: he might even have been made amiable himself""")
SENTENCES = _table("""
please-try-again: Please try again.
vm-nobodyavail: Nobody is available to take your call at the moment.
one-moment-please: One moment, please.
all-circuits-busy-now: All circuits are busy now.
cannot-complete-as-dialed: Your call cannot be completed as dialed.
check-number-dial-again: Please check the number and dial again.
pls-hold-while-try: Please hold while we try to connect you.
please-try-call-later: Please try your call again later.
number-not-answering: The number is not answering.
something-terribly-wrong: Something is terribly wrong!
sorry-youre-having-problems: Sorry you're having problems.
feature-not-avail-line: That feature is not available on this line.
vm-msgsaved: Your message has been saved.
vm-tooshort: Your message is too short.
conf-onlyperson: You are currently the only person in this conference.
tt-weasels: Weasels have eaten our phone system.
queue-thankyou: Thank you for your patience.
vm-nonumber: I'm afraid I don't know who sent this message.
vm-sorry: I'm sorry I did not understand your response.
im-sorry: I'm sorry.
hello-world: Hello world.
auth-thankyou: Thank you.""")
# Hesitations: a phrase trailing off on a conjunction or preposition, then the rest after a pause.
LEADS = {"telephone-number": "telephone number", "extension": "extension", "vm-message": "message", "number": "number",
         "vm-theperson": "the person at extension"}  # fmt: skip
TRAILS = {"vm-and": "and", "for": "for", "with": "with", "vm-from": "from", "is": "is"}
ES = _table("""
please-try-again: Por favor intente de nuevo.
vm-nobodyavail: En este momento nadie esta libre para responder a su llamada.
hello-world: Hola Mundo!
vm-goodbye: Hasta pronto.""")
FR = _table("""
please-try-again: Essayez à nouveau.
one-moment-please: Un moment s'il-vous-plaît.
check-number-dial-again: Veuillez vérifier le numéro et composer de nouveau.
all-circuits-busy-now: Toutes les lignes sont occupées pour l'instant.
vm-nobodyavail: Personne n'est en mesure de prendre votre appel en ce moment.""")
BACKCHANNELS = {"en-us/mm-hmm": "Mm hmm.", "en-us/okay": "Okay.", "en-us/yeah": "Yeah.", "en-us/right": "Right.",
                "en-us/uh-huh": "Uh huh.", "hi/haan": "हाँ", "hi/achha": "अच्छा"}  # fmt: skip
REAL_BACKCHANNELS = {"en/digits/oh": "oh", "en/letters/o+en/letters/k": "O K (read as letters)"}
NOISES = ("white", "pink", "brown", "hum-50", "hum-60", "door-slam", "cough", "traffic", "keyboard", "dropped-phone")
EVENTS = ("cough", "throat-clear", "door-slam", "hmm", "breath")

# Pools of sources; each source's split comes from its own pool, the same wherever it is used.
BOOKS, PROMPTS = [f"librivox/{u}" for u in LIBRIVOX], [f"en/{s}" for s in SENTENCES]
DIGITS, WORDS = [f"en/digits/{d}" for d in range(10)], ([f"en/{w}" for w in LEADS], [f"en/{w}" for w in TRAILS])
ES_NAMES, FR_NAMES = [f"es/{s}" for s in ES], [f"fr/{s}" for s in FR]
ESPEAK = tuple([f"espeak-ng/{k}" for k in BACKCHANNELS if k.startswith(v)] for v in ("en-us/", "hi/"))
SYNTHETIC = [f"synthetic/{k}" if k != "hmm" else "espeak-ng/en-us/hmm" for k in dict.fromkeys(NOISES + EVENTS)]
ECHOES = [f"synthetic/line-hiss-echo{g}dB-{d}ms" for g in ECHO_GAINS for d in ECHO_DELAYS]
POOLS = (BOOKS, PROMPTS, DIGITS, *WORDS, ES_NAMES, FR_NAMES, list(REAL_BACKCHANNELS), *ESPEAK, SYNTHETIC, ECHOES)
SPLITS: tuple[Split, Split] = ("tune", "held-out")  # indexed by "is held out"


def _split(name: str, pool: list[str]) -> Split:
    """Held out: every third source of its pool ordered by CRC-32, so both splits get some of every pool."""
    ranked = sorted(pool, key=lambda s: (zlib.crc32(s.encode()), s))
    return SPLITS[ranked.index(name) % 3 == 1]


def source_split(source: str) -> Split:
    """The split of a source (or of the first of several joined by '+': a case's sources share a split)."""
    return next(_split(n, pool) for n in (source, source.split("+")[0]) for pool in POOLS if n in pool)


def _part(pool: list[str], split: Split) -> list[str]:
    return [name for name in pool if _split(name, pool) == split]


def _rng(seed: int, key: str) -> np.random.Generator:
    """One generator per case, so adding a case never changes the others."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def _missing(path: Path) -> FileNotFoundError:
    return FileNotFoundError(f"{path} is missing: run scripts/install-test-data.sh (Debian packages {PACKAGES})")


def phone_band(x: np.ndarray) -> np.ndarray:
    """300–3400 Hz, what a phone line carries: an FFT mask with raised-cosine edges, which keep ringing short."""
    pad, n = 1024, x.size + 2048
    f = np.fft.rfftfreq(n, 1 / RATE)
    mask = (
        np.sin(np.pi / 2 * np.clip((f - 200) / 100, 0, 1)) * np.sin(np.pi / 2 * np.clip((3800 - f) / 400, 0, 1))
    ) ** 2
    return np.fft.irfft(np.fft.rfft(np.pad(x, pad), n) * mask, n)[pad : pad + x.size]


def levels_db(x: np.ndarray) -> np.ndarray:
    """Level of each 10 ms window in dB (of full scale for int16 and for ±1.0 floats)."""
    n = x.size // WIN
    frames = x[: n * WIN].astype(np.float64).reshape(n, WIN) / (32768.0 if x.dtype == np.int16 else 1.0)
    return 10 * np.log10(np.mean(frames * frames, axis=1) + 1e-20)


def _at_rms(x: np.ndarray, db: float) -> np.ndarray:
    return x * 10 ** (db / 20) / max(float(np.sqrt(np.mean(x * x))), 1e-12)


def _at_peak(x: np.ndarray, db: float) -> np.ndarray:
    return x * 10 ** (db / 20) / max(float(np.max(np.abs(x))), 1e-12)


def _trim(x: np.ndarray) -> np.ndarray:
    """Speech at 0 dB active level (windows within 40 dB of the loudest), trimmed on the 10 ms grid, faded.

    The edges are the first and last windows louder than −QUIET_DB, so a pause measured from the energy
    is the pause inserted; 4 ms ramps keep the cuts from clicking.
    """
    lv = levels_db(x)
    x = x / 10 ** (10 * np.log10(np.mean(10 ** (lv[lv > lv.max() - 40] / 10))) / 20)
    loud = np.nonzero(levels_db(x) > -QUIET_DB)[0]
    return _fade(x[loud[0] * WIN : (loud[-1] + 1) * WIN])


def _fade(x: np.ndarray) -> np.ndarray:
    ramp = np.linspace(0.0, 1.0, min(32, x.size // 2))
    x = x.copy()
    x[: ramp.size] *= ramp
    x[x.size - ramp.size :] *= ramp[::-1]
    return x


@cache
def _recording(name: str) -> np.ndarray:
    """'librivox/0880', 'en/please-try-again', 'en/digits/4', 'es/…' → phone band, 8 kHz, trimmed, 0 dB."""
    kind, rest = name.split("/", 1)
    folder = LIBRIVOX_DIR if kind == "librivox" else FOLDERS[kind]
    path = folder / (f"sense_and_sensibility_01_austen_64kb-{rest}.wav" if kind == "librivox" else f"{rest}.wav")
    if not path.exists():
        raise _missing(path)
    x = _trim(phone_band(load_as_telephony(path) / 32768.0))
    x.flags.writeable = False
    return x


def _cut(name: str, gaps: int) -> list[np.ndarray]:
    """A LibriVox sentence in up to ``gaps + 1`` pieces, cut at its longest internal quiet gaps.

    A gap is ≥ 30 ms under −QUIET_DB and ≥ 0.7 s from either end of the speech (about 1 s from the
    ends of the file), so each piece is real running speech. The gap is removed: the pause inserted
    is then all the silence there is.
    """
    x = _recording(name)
    quiet, runs, i = levels_db(x) < -QUIET_DB, [], 0
    while i < quiet.size:
        j = i
        while j < quiet.size and quiet[j]:
            j += 1
        if j - i >= 3 and min(i, quiet.size - j) >= 70:
            runs.append((i, j))
        i = max(j, i + 1)
    chosen: list[tuple[int, int]] = []
    for run in sorted(runs, key=lambda r: (r[0] - r[1], r[0])):
        if len(chosen) < gaps and all(abs(run[0] - c[0]) >= 80 for c in chosen):
            chosen.append(run)
    edges = [0, *[e for run in sorted(chosen) for e in run], quiet.size]
    return [_fade(x[s * WIN : e * WIN]) for s, e in zip(edges[::2], edges[1::2])]


@cache
def _espeak(voice: str, text: str, speed: float) -> tuple[np.ndarray, int]:
    """espeak-ng through the project's own engine (libespeak-ng from ``espeakng-loader``)."""
    from voxline.providers.pool import ModelPool
    from voxline.tts.espeak_tts import EspeakTTS

    return EspeakTTS(ModelPool(1), voice=voice, speed=speed).synthesize_pcm(text)


def _synthetic_word(voice: str, text: str, rng: np.random.Generator, speed: float = 1.0) -> np.ndarray:
    """A synthesized word, pitch and tempo moved ±8 % (read at another rate) so the cases differ."""
    pcm, rate = _espeak(voice, text, speed)
    return _trim(phone_band(resample(pcm, int(rate * rng.uniform(0.92, 1.08)), RATE) / 32768.0))


def _colored(rng: np.random.Generator, n: int, beta: float) -> np.ndarray:
    """Noise with a 1/f^beta power spectrum: 0 white, 1 pink, 2 brown."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spec[1:] /= f[1:] ** (beta / 2)
    spec[0] = 0
    return np.fft.irfft(spec, n)


def _hiss(rng: np.random.Generator, n: int, db: float) -> np.ndarray:
    return _at_rms(phone_band(_colored(rng, n, 1.0)), db)


def _burst(rng: np.random.Generator, seconds: float, tau: float, attack: float = 0.002) -> np.ndarray:
    """Noise with a fast linear attack and an exponential decay: the shape of an impact or a cough."""
    t = np.arange(int(seconds * RATE)) / RATE
    return rng.standard_normal(t.size) * np.minimum(t / attack, 1.0) * np.exp(-t / tau)


def _event(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A short non-speech sound (≤ 0.6 s, a dropped phone's bounce aside), phone band, at a realistic level."""
    t = np.arange(int(0.6 * RATE)) / RATE
    if kind == "cough":  # 1–2 bursts of 200–280 ms, fast attack, voiced-ish 150–300 Hz modulation
        out = np.zeros(0)
        for k in range(int(rng.integers(1, 3))):
            dur = rng.uniform(0.2, 0.28)
            voiced = 1 + 0.7 * np.sin(2 * np.pi * rng.uniform(150, 300) * t[: int(dur * RATE)])
            out = np.concatenate(
                [
                    out,
                    np.zeros(int(rng.uniform(0.04, 0.08) * RATE) * k),
                    _burst(rng, dur, dur / 3, 0.01) * voiced * 0.7**k,
                ]
            )
        return _at_rms(phone_band(out[: t.size]), rng.uniform(-26, -20))
    if kind == "throat-clear":  # low rumble with creaky 90–130 Hz pulses, swelling then fading
        n = int(rng.uniform(0.35, 0.5) * RATE)
        creak = (np.sin(2 * np.pi * rng.uniform(90, 130) * t[:n]) > 0.6) + 0.3
        return _at_rms(phone_band(_colored(rng, n, 1.5) * creak * np.hanning(n)), rng.uniform(-27, -21))
    if kind == "breath":  # a near-mic exhale
        n = int(rng.uniform(0.3, 0.5) * RATE)
        return _at_rms(phone_band(_colored(rng, n, 1.0) * np.hanning(n)), rng.uniform(-37, -31))
    if kind == "door-slam":  # broadband impact, a low thud, a smaller rattle after it; peak near −6 dBFS
        x = _burst(rng, 0.5, rng.uniform(0.04, 0.09)) + 2 * np.sin(2 * np.pi * 90 * t[:4000]) * np.exp(-t[:4000] / 0.12)
        lag = int(rng.uniform(0.06, 0.12) * RATE)
        x[lag:] += 0.25 * _burst(rng, 0.5, 0.03)[: x.size - lag]
        return _at_peak(phone_band(x), rng.uniform(-7.5, -4.5))
    if kind == "dropped-phone":  # a thud (decaying 120–250 Hz) with a click, and one bounce
        thud = np.sin(2 * np.pi * rng.uniform(120, 250) * t) * np.exp(-t / 0.08) + _burst(rng, 0.6, 0.01)
        x = np.concatenate([thud, np.zeros(int(rng.uniform(0.12, 0.25) * RATE)), 0.3 * thud])
        return _at_peak(phone_band(x), rng.uniform(-8, -3))
    raise ValueError(kind)


def _noise_clip(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """A noise-only clip: steady noise (−50…−30 dBFS line noise, hum, traffic), or events over faint hiss."""
    t = np.arange(n) / RATE
    if kind in ("white", "pink", "brown"):
        return _at_rms(phone_band(_colored(rng, n, ("white", "pink", "brown").index(kind))), rng.uniform(-50, -30))
    if kind.startswith("hum"):  # mains with its harmonics: the phone band keeps the buzz above 300 Hz
        f0 = int(kind[4:])
        x = np.sum([np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3)) / k for k in range(1, 3400 // f0)], axis=0)
        return _at_rms(phone_band(x), rng.uniform(-42, -30))
    if kind == "traffic":  # low-passed brown noise, swelling as a car passes
        spec = np.fft.rfft(_colored(rng, n, 2.0) * (1 + 0.6 * np.sin(2 * np.pi * rng.uniform(0.15, 0.4) * t)))
        spec[np.fft.rfftfreq(n, 1 / RATE) > 1000] = 0
        return _at_rms(phone_band(np.fft.irfft(spec, n)), rng.uniform(-42, -32))
    out = _hiss(rng, n, rng.uniform(-62, -52))
    if kind == "keyboard":  # key clicks every 80–250 ms
        for pos in np.cumsum(rng.uniform(0.08, 0.25, 40) * RATE).astype(int):
            if pos < n - 120:
                out[pos : pos + 120] += _at_peak(phone_band(_burst(rng, 0.015, 0.003, 0.0005)), rng.uniform(-26, -18))
        return out
    event = _event(kind, rng)[: n // 2]
    start = int(rng.uniform(0.2, 0.4) * n)
    out[start : start + event.size] += event
    return out


def _on_line(x: np.ndarray) -> np.ndarray:
    """Float ±1.0 → int16 through G.711 μ-law and back; peaks above −6 dBFS are soft-limited, not clipped."""
    x = np.where(np.abs(x) > 0.5, np.sign(x) * (0.5 + 0.5 * np.tanh((np.abs(x) - 0.5) / 0.5)), x)
    return mulaw.decode(mulaw.encode(np.round(x * 32767.0).astype(np.int16)))


def _speech(segments: list[list[np.ndarray]], pause_s: float, rng: np.random.Generator, snr_db: float | None = None,
            hiss: bool = True) -> tuple[np.ndarray, Spans]:  # fmt: skip
    """Segments (words joined by 60 ms) with pauses between, at −22 ± 4 dBFS RMS, background added, on the line."""
    parts, spans, pos = [np.zeros(int(LEAD_S * RATE))], [], int(LEAD_S * RATE)
    for k, words in enumerate(segments):
        gap = np.zeros(int(WORD_GAP_S * RATE))
        seg = np.concatenate([p for w, word in enumerate(words) for p in ([gap] if w else []) + [word]])
        pos += round(pause_s * RATE) if k else 0
        parts += [np.zeros(round(pause_s * RATE))] * (k > 0) + [seg]
        spans.append((pos / RATE, (pos + seg.size) / RATE))
        pos += seg.size
    x = np.concatenate([*parts, np.zeros(int(TAIL_S * RATE))])
    level = -22.0 + rng.uniform(-4, 4)
    inside = np.concatenate([x[round(a * RATE) : round(b * RATE)] for a, b in spans])
    x = x * 10 ** (level / 20) / float(np.sqrt(np.mean(inside * inside)))
    if snr_db is not None:  # white, pink or reddish noise, SNR against the speech's own level
        x = x + _at_rms(phone_band(_colored(rng, x.size, float(rng.choice([0.0, 1.0, 1.5])))), level - snr_db)
    elif hiss:
        x = x + _hiss(rng, x.size, rng.uniform(-62, -52))
    return _on_line(x), tuple(spans)


def _case(id: str, family: Family, source: str, audio: tuple[np.ndarray, Spans], **kw: Any) -> TurnCase:
    """A case with the split of its first source (they all share it), its family's expectation and flags."""
    during, expect = family in EXPECT and family != "noise", EXPECT.get(family, "answer-once")
    return TurnCase(id, family, source_split(source), audio[0], audio[1], kw.pop("text", ""), during,
                    kw.pop("offset_s", 0.0), expect=expect, synthetic=source.startswith(("synthetic/", "espeak-ng/")),
                    source=source, **kw)  # fmt: skip


def _short(name: str) -> str:
    return name.replace("librivox/", "librivox-").replace("en/", "").replace("es/", "es-").replace("fr/", "fr-")


def _text(name: str) -> str:
    kind, stem = name.split("/", 1)
    return {"librivox": LIBRIVOX, "en": {**SENTENCES, **LEADS, **TRAILS}, "es": ES, "fr": FR}[kind].get(
        stem, stem.split("/")[-1]
    )


def _background(i: int, period: int, snrs: tuple[int, ...]) -> tuple[float | None, bool, str]:
    """Every ``period``-th case gets noise at the next SNR, every other remaining one faint line hiss."""
    if i % period == period - 1:
        snr = snrs[(i // period) % len(snrs)]
        return float(snr), False, f"+snr{snr}"
    return None, i % 2 == 0, "+hiss" * (i % 2 == 0)


def _pause_specs(seed: int) -> list[tuple[str, list[list[str]]]]:
    """(kind, the sources in each segment) for 40 turns; sources of one turn always share a split."""
    specs = [(f"mid-sentence-{g + 1}", [[b]] * (g + 1)) for b in BOOKS for g in (1, 2)]
    for part in (_part(BOOKS, split) for split in SPLITS):
        specs += [("sentences", [[a], [b]]) for a, b in zip(part, part[1:] + part[:1]) if a != b]
    for j in range(20 - len(specs)):
        a, b = _rng(seed, f"pair{j}").choice(_part(PROMPTS, SPLITS[j % 3 == 1]), 2, replace=False)
        specs.append(("sentences", [[str(a)], [str(b)]]))
    for j in range(10):  # a US phone number, 3-3-4
        number = [str(d) for d in _rng(seed, f"phone{j}").choice(_part(DIGITS, SPLITS[j % 3 == 1]), 10)]
        specs.append(("digits", [number[:3], number[3:6], number[6:]]))
    for j in range(10):  # "telephone number is … <sentence>", one or two trailing-off phrases
        rng = _rng(seed, f"hesitation{j}")
        picks = [rng.permutation(_part(pool, SPLITS[j % 3 == 1]))[: 1 + j % 2] for pool in WORDS]
        sentence = str(rng.choice(_part(PROMPTS, SPLITS[j % 3 == 1])))
        specs.append(("hesitation", [*[[str(a), str(b)] for a, b in zip(*picks)], [sentence]]))
    return specs


def _pauses(seed: int) -> list[TurnCase]:
    """40 turns with 300–700 ms pauses: mid-sentence cuts, sentence pairs, phone numbers, trailing words."""
    cases = []
    for i, (kind, names) in enumerate(_pause_specs(seed)):
        pause_ms, (snr, hiss, mark) = PAUSES_MS[i % len(PAUSES_MS)], _background(i, 7, (20, 10, 5))
        segments = [[_recording(n) for n in seg] for seg in names]
        text = " … ".join(" ".join(_text(n) for n in seg) for seg in names)
        label = "+".join("-".join(_short(n) for n in seg) for seg in names)
        if kind.startswith("mid"):
            segments, text, label = [[p] for p in _cut(names[0][0], len(names) - 1)], _text(names[0][0]), names[0][0]
            kind = f"mid-sentence-{len(segments)}"
        if kind == "digits":
            label = "-".join("".join(n[-1] for n in seg) for seg in names)
        audio = _speech(segments, pause_ms / 1000, _rng(seed, f"pauses{i}"), snr, hiss)
        source = "+".join(dict.fromkeys(n for seg in names for n in seg))
        cases.append(_case(f"pauses/{kind}/{_short(label)}/{pause_ms}ms{mark}", "pauses", source, audio, text=text,
                           snr_db=snr))  # fmt: skip
    return cases


def _single(seed: int, family: Family, names: list[str]) -> list[TurnCase]:
    """One real utterance per case: complete turns, or barge-ins over the agent (from the 17th, with echo)."""
    cases = []
    for i, name in enumerate(names):
        rng, echo = _rng(seed, f"{family}{i}{name}"), family == "barge-in" and i >= 16
        snr, hiss, mark = (
            (None, True, "+hiss") if echo else _background(i, 4, (20, 10, 5) if family == "complete" else (20, 10))
        )
        kw: dict[str, Any] = {"text": _text(name), "snr_db": snr}
        if family == "barge-in":
            kw["offset_s"] = round(float(rng.uniform(0.6, 2.0)), 2)
        prefix = f"{family}/"
        if echo:  # a real interruption while the agent's echo is on the line: −10…−20 dB
            kw.update(echo_gain_db=float(ECHO_GAINS[i % 3]), echo_delay_ms=ECHO_DELAYS[i % 4])
            prefix = f"barge-in/echo{ECHO_GAINS[i % 3]}dB-{ECHO_DELAYS[i % 4]}ms/"
        audio = _speech([[_recording(name)]], 0.0, rng, snr, hiss)
        cases.append(_case(f"{prefix}{_short(name)}{mark}", family, name, audio, **kw))
    return cases


def _no_speech(seed: int) -> list[TurnCase]:
    """20 noise-only clips (two of each kind, 1.5–4 s), and 20 silent callers hearing their echo."""
    cases = []
    for v in (1, 2):
        for kind in NOISES:
            rng = _rng(seed, f"noise/{kind}-{v}")
            clip = _on_line(_noise_clip(kind, rng, int(rng.uniform(1.5, 4.0) * RATE)))
            cases.append(_case(f"noise/{kind}-{v}", "noise", f"synthetic/{kind}", (clip, ())))
    for key, (gain, delay) in zip(ECHOES, [(g, d) for g in ECHO_GAINS for d in ECHO_DELAYS]):
        rng = _rng(seed, key)
        clip = _on_line(_hiss(rng, 4 * RATE, rng.uniform(-55, -45)))
        cases.append(_case(f"echo/{gain}dB/{delay}ms", "echo", key, (clip, ()), echo_gain_db=float(gain),
                           echo_delay_ms=delay))  # fmt: skip
    return cases


def _backchannels(seed: int) -> list[TurnCase]:
    """16 listener words over the agent: espeak-ng en-us and hi at two speeds, and Allison's real "oh", "O K"."""
    cases = []
    for speed in (0.9, 1.15):
        for key, text in BACKCHANNELS.items():
            rng = _rng(seed, f"{key}{speed}")
            audio = _speech([[_synthetic_word(key.split("/")[0], text, rng, speed)]], 0.0, rng)
            offset = round(float(rng.uniform(0.8, 2.5)), 2)
            cases.append(_case(f"backchannel/espeak-{key.replace('/', '-')}-{speed}x", "backchannel",
                               f"espeak-ng/{key}", audio, text=text, offset_s=offset))  # fmt: skip
    for name, text in REAL_BACKCHANNELS.items():
        rng = _rng(seed, name)
        audio = _speech([[_recording(n) for n in name.split("+")]], 0.0, rng)
        word = name.replace("en/digits/", "").replace("en/letters/", "").replace("+", "-")
        cases.append(_case(f"backchannel/allison-{word}", "backchannel", name, audio, text=text,
                           offset_s=round(float(rng.uniform(0.8, 2.5)), 2)))  # fmt: skip
    return cases


def _false_interruptions(seed: int) -> list[TurnCase]:
    """12 short non-speech sounds (≤ 0.6 s) over the agent, which may pause but should then resume."""
    cases = []
    for i in range(12):
        kind, rng = EVENTS[i % len(EVENTS)], _rng(seed, f"event{i}")
        if kind == "hmm":
            audio = _speech([[_synthetic_word("en-us", "Hmm.", rng)]], 0.0, rng)
        else:
            event, lead = _event(kind, rng), int(LEAD_S * RATE)
            x = _hiss(rng, lead + event.size + int(TAIL_S * RATE), rng.uniform(-62, -52))
            x[lead : lead + event.size] += event
            audio = (_on_line(x), ())
        source = "espeak-ng/en-us/hmm" if kind == "hmm" else f"synthetic/{kind}"
        cases.append(_case(f"false-interruption/{kind}-{i // len(EVENTS) + 1}", "false-interruption", source, audio,
                           text="hmm" * (kind == "hmm"), offset_s=round(float(rng.uniform(0.8, 2.0)), 2)))  # fmt: skip
    return cases


def build_cases(seed: int = 7) -> list[TurnCase]:
    """Every case of every family in a fixed order; the same seed gives the same audio, sample for sample."""
    for folder in (LIBRIVOX_DIR, *FOLDERS.values()):
        if not folder.is_dir():
            raise _missing(folder)
    complete = BOOKS + PROMPTS[:11] + ES_NAMES[:2] + FR_NAMES[:2]
    barge = BOOKS + PROMPTS[11:20] + ES_NAMES[2:3] + FR_NAMES[2:3] + BOOKS[:4] + PROMPTS[20:] + PROMPTS[:2]
    cases = [*_pauses(seed), *_single(seed, "complete", complete), *_single(seed, "barge-in", barge)]
    cases += [*_no_speech(seed), *_backchannels(seed), *_false_interruptions(seed)]
    return sorted(cases, key=lambda c: FAMILIES.index(c.family))


def subset(cases: list[TurnCase], per_family: int) -> list[TurnCase]:
    """The first ``per_family`` cases of each family, alternating tune and held-out so both are represented."""
    out: list[TurnCase] = []
    for family in FAMILIES:
        tune = [c for c in cases if c.family == family and c.split == "tune"]
        held = [c for c in cases if c.family == family and c.split == "held-out"]
        out += ([c for pair in zip(tune, held) for c in pair] + tune[len(held) :] + held[len(tune) :])[:per_family]
    return out


def material_summary(cases: list[TurnCase]) -> dict[str, Any]:
    """Counts per family and split, how much is synthetic or noisy, and every source, for the report."""
    return {
        "cases": len(cases),
        "per_family": {f: dict(Counter(c.split for c in cases if c.family == f)) for f in FAMILIES},
        "synthetic": sum(c.synthetic for c in cases),
        "real_speech": sum(not c.synthetic for c in cases),
        "with_noise_at_snr": sum(c.snr_db is not None for c in cases),
        "speech_with_line_hiss": sum("+hiss" in c.id for c in cases),  # during-agent clips always have some
        "sources": sorted({s for c in cases for s in c.source.split("+")}),
        "held_out_sources": sorted({s for c in cases if c.split == "held-out" for s in c.source.split("+")}),
    }
