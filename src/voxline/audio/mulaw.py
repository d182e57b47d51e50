"""G.711 μ-law ↔ 16-bit PCM with numpy lookup tables.

Twilio carries 8 kHz μ-law both ways. Decoding is a 256-entry table (identical to every
reference decoder); encoding is a 65536-entry table indexed by the unsigned 16-bit sample,
built once with the same segment arithmetic as CPython's ``audioop.lin2ulaw`` so the bytes
match it exactly. A table lookup costs well under a microsecond per 20 ms frame.
"""

from __future__ import annotations

import numpy as np

_BIAS = 0x84
_CLIP_14BIT = 8159
_SEG_END_14BIT = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)


def _build_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _build_encode_table() -> np.ndarray:
    """μ-law byte for every int16 value, indexed by ``sample & 0xFFFF`` (audioop's algorithm)."""
    samples = np.arange(65536, dtype=np.int32)
    samples = np.where(samples >= 32768, samples - 65536, samples)
    # audioop works on 14-bit magnitudes: shift right by 2 first.
    pcm = samples >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    pcm = np.where(pcm < 0, -pcm, pcm)
    pcm = np.minimum(pcm, _CLIP_14BIT)
    pcm = pcm + (_BIAS >> 2)
    segment = np.searchsorted(_SEG_END_14BIT, pcm, side="left")
    seg_clipped = np.minimum(segment, 7)
    uval = (seg_clipped << 4) | ((pcm >> (seg_clipped + 1)) & 0x0F)
    out = np.where(segment >= 8, 0x7F ^ mask, uval ^ mask)
    return out.astype(np.uint8)


DECODE_TABLE: np.ndarray = _build_decode_table()
ENCODE_TABLE: np.ndarray = _build_encode_table()
SILENCE_BYTE = 0xFF


def _table_decode(ulaw: bytes) -> np.ndarray:
    return DECODE_TABLE[np.frombuffer(ulaw, dtype=np.uint8)]


def _table_encode(pcm: np.ndarray) -> bytes:
    return ENCODE_TABLE[pcm.astype(np.int16, copy=False).view(np.uint16)].tobytes()


def _audioop():
    """The C codec (``audioop``: stdlib up to 3.12, ``audioop-lts`` after), or None."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            return None
    return audioop


# Per 20 ms frame the C codec takes about 0.5 µs against 2.3 µs for a numpy lookup (dominated by
# creating arrays), and every call decodes 50 frames a second. Both give identical bytes.
_C = _audioop()


def decode(ulaw: bytes) -> np.ndarray:
    """μ-law bytes → int16 samples."""
    if _C is None:
        return _table_decode(ulaw)
    return np.frombuffer(bytearray(_C.ulaw2lin(ulaw, 2)), dtype=np.int16)  # writable, like the table's


# ``audioop.lin2ulaw`` searches the segment table per sample: ahead for a 20 ms frame, but about
# five times slower than the lookup table from ~1000 samples up (400 µs against 80 µs for the 4 s
# of an utterance sent to a hosted STT). Same bytes either way.
_TABLE_FROM_SAMPLES = 1024


def encode(pcm: np.ndarray) -> bytes:
    """int16 samples → μ-law bytes."""
    if _C is None or len(pcm) >= _TABLE_FROM_SAMPLES:
        return _table_encode(pcm)
    return _C.lin2ulaw(np.ascontiguousarray(pcm, dtype=np.int16).tobytes(), 2)
