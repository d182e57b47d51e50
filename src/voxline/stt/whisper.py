"""Embedded speech-to-text: faster-whisper running Whisper tiny.en from a PyPI package.

Whisper is trained on 16 kHz audio, so the caller's 8 kHz samples are upsampled first (fed at
the wrong rate, it transcribes nonsense). One model is loaded per process and shared by every
call; CTranslate2 releases the GIL, so transcription runs on the model's worker thread.

Whisper's encoder normally runs over a 30-second window however short the audio. A phone turn
lasts a few seconds, so by default the encoder sees a 10-second window (longer turns: the
utterance plus 2 s), the "fit" window. On 2 cores that makes a transcription about 2.5 times
faster with the same words on real speech; windows shorter than about 10 s make Whisper repeat
short phrases in a loop (``bench/stt_window.py`` measures both). ``window="full"`` keeps the
standard 30-second decode.
"""

from __future__ import annotations

import math
import threading
import zlib
from pathlib import Path
from typing import Literal

import numpy as np

from voxline.audio.pcm import TELEPHONY_RATE, int16_to_float, resample
from voxline.providers.pool import ModelPool

WHISPER_RATE = 16000
HOP = 160  # samples per mel frame at 16 kHz
MAX_FRAMES = 3000  # Whisper's 30-second window
FIT_PADDING_S = 2.0
FIT_MIN_S = 10.0  # shorter windows make Whisper repeat short phrases in a loop
NO_SPEECH_PROBABILITY = 0.6
LOW_AVERAGE_LOGPROB = -1.0
# Whisper's own test for a decoding stuck in a loop ("you you you …" on hiss or noise): text that
# compresses more than this is taken for no words. A caller's "no, no, no" is far below it.
COMPRESSION_RATIO_LIMIT = 2.4

Window = Literal["fit", "full"]


LOOP_REPEATS = 4  # a phrase said this many times in a row at the end is Whisper looping, not the caller
LOOP_PHRASE_WORDS = 8


def _without_repeated_tail(text: str) -> str:
    """Real words followed by a phrase repeated over and over ("… about my bill? Please. Please.
    Please. Please. …", Whisper on the padding after speech): the words and the phrase once.
    Numbers repeated are the caller's ("7 7 7 7"), and a transcript that is only the loop is left
    to the compression check."""
    words = text.split()
    folded = [w.strip(".,!?;:").casefold() for w in words]
    for size in range(1, LOOP_PHRASE_WORDS + 1):
        tail = folded[-size:]
        if not any(ch.isalpha() for w in tail for ch in w):
            continue
        repeats = 1
        while len(folded) >= (repeats + 1) * size and folded[-(repeats + 1) * size : -repeats * size] == tail:
            repeats += 1
        before = len(words) - repeats * size
        if repeats >= LOOP_REPEATS:  # the shortest phrase that loops: cut there, if words come before it
            return " ".join(words[: before + size]) if before >= 2 else text
    return text


def _unless_looping(text: str) -> str:
    """The transcript without a looping tail, or nothing when it is all one phrase repeated over
    and over (a hallucination on noise)."""
    text = _without_repeated_tail(text)
    data = text.encode("utf-8")
    if len(data) > 48 and len(data) / len(zlib.compress(data)) > COMPRESSION_RATIO_LIMIT:
        return ""
    return text


class WhisperSTT:
    def __init__(self, model_dir: Path, pool: ModelPool, threads: int, window: Window = "fit") -> None:
        from faster_whisper import WhisperModel

        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
        self.multilingual: bool = self._model.model.is_multilingual
        self.name = "whisper-base" if self.multilingual else "whisper-tiny.en"
        self.window: Window = window
        self._pool = pool
        self._lock = threading.Lock()
        self._tokenizers: dict[str, object] = {}

    def transcribe_blocking(self, pcm8k: np.ndarray, language: str) -> str:
        audio = resample(int16_to_float(pcm8k), TELEPHONY_RATE, WHISPER_RATE)
        with self._lock:
            # With no language given, a multilingual model detects it (on the standard window).
            if (
                self.window == "fit"
                and audio.size + FIT_PADDING_S * WHISPER_RATE < MAX_FRAMES * HOP
                and (language or not self.multilingual)
            ):
                return self._transcribe_fit(audio, language)
            return self._transcribe_full(audio, language)

    def _transcribe_full(self, audio: np.ndarray, language: str) -> str:
        segments, _info = self._model.transcribe(
            audio,
            language=(language or None) if self.multilingual else None,
            beam_size=1,
            temperature=0.0,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        return _unless_looping(" ".join(segment.text.strip() for segment in segments).strip())

    def _tokenizer(self, language: str):
        from faster_whisper.tokenizer import Tokenizer

        if language not in self._tokenizers:
            multilingual = self._model.model.is_multilingual
            self._tokenizers[language] = Tokenizer(
                self._model.hf_tokenizer, multilingual, task="transcribe", language=language if multilingual else None
            )
        return self._tokenizers[language]

    def _transcribe_fit(self, audio: np.ndarray, language: str) -> str:
        import ctranslate2
        from faster_whisper.transcribe import get_suppressed_tokens

        seconds = max(FIT_MIN_S, audio.size / WHISPER_RATE + FIT_PADDING_S)
        frames = min(MAX_FRAMES, math.ceil(seconds * WHISPER_RATE / HOP / 100) * 100)
        padded = np.zeros(frames * HOP, dtype=np.float32)
        padded[: audio.size] = audio
        features = self._model.feature_extractor(padded)[:, :frames]
        encoded = self._model.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None], dtype=np.float32)), to_cpu=False
        )
        tokenizer = self._tokenizer(language)
        prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        result = self._model.model.generate(
            encoded,
            [prompt],
            beam_size=1,
            max_length=frames // 10 + 20,
            suppress_blank=True,
            suppress_tokens=list(get_suppressed_tokens(tokenizer, [-1])),
            return_scores=True,
            return_no_speech_prob=True,
        )[0]
        if result.no_speech_prob > NO_SPEECH_PROBABILITY and result.scores[0] < LOW_AVERAGE_LOGPROB:
            return ""
        return _unless_looping(tokenizer.decode(result.sequences_ids[0]).strip())

    async def transcribe(self, pcm8k: np.ndarray, language: str) -> str:
        return await self._pool.run(self.transcribe_blocking, pcm8k, language)

    def warm_up(self) -> None:
        self.transcribe_blocking(np.zeros(TELEPHONY_RATE // 2, dtype=np.int16), "en")
