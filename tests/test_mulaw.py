"""μ-law codec: decoding matches the reference table exactly, encoding matches CPython audioop."""

import sys

import numpy as np
import pytest

from voxline.audio import mulaw

if sys.version_info >= (3, 13):
    import audioop_lts as audioop  # type: ignore[import-not-found]
else:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop


KNOWN_DECODE = {0xFF: 0, 0x7F: 0, 0x00: -32124, 0x80: 32124, 0xFE: 8, 0x7E: -8, 0x01: -31100, 0xE7: 260, 0x67: -260}
KNOWN_ENCODE = {-1: 0x7E, -100: 0x72, 100: 0xF2, 1000: 0xCE, -1000: 0x4E, 8000: 0xA0, 32767: 0x80, -32768: 0x00}


def test_decode_known_answers():
    for byte, value in KNOWN_DECODE.items():
        assert mulaw.decode(bytes([byte]))[0] == value


def test_decode_matches_audioop_for_every_byte():
    every = bytes(range(256))
    expected = np.frombuffer(audioop.ulaw2lin(every, 2), dtype=np.int16)
    assert np.array_equal(mulaw.decode(every), expected)


def test_encode_matches_audioop_for_every_sample():
    every = np.arange(-32768, 32768, dtype=np.int16)
    assert mulaw.encode(every) == audioop.lin2ulaw(every.tobytes(), 2)


@pytest.mark.parametrize("sample,code", sorted(KNOWN_ENCODE.items()))
def test_encode_known_answers(sample, code):
    assert mulaw.encode(np.array([sample], dtype=np.int16)) == bytes([code])


def test_round_trip_is_close_on_speech_levels():
    rng = np.random.default_rng(1)
    pcm = (rng.standard_normal(8000) * 3000).astype(np.int16)
    back = mulaw.decode(mulaw.encode(pcm)).astype(np.int32)
    err = np.abs(back - pcm.astype(np.int32))
    assert np.all(err <= np.maximum(8, np.abs(pcm.astype(np.int32)) // 16 + 4))


def test_silence_frame_decodes_to_zero():
    assert not mulaw.decode(bytes([mulaw.SILENCE_BYTE]) * 160).any()
