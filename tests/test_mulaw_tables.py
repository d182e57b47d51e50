"""The μ-law lookup tables on their own: the path used without a C codec (Python 3.13+ without
audioop-lts) and for long audio, checked against G.711's definition rather than against audioop."""

import numpy as np
import pytest

from voxline.audio import mulaw

pytestmark = pytest.mark.unit

KNOWN_DECODE = {0xFF: 0, 0x7F: 0, 0x00: -32124, 0x80: 32124, 0xFE: 8, 0x7E: -8, 0x01: -31100, 0xE7: 260, 0x67: -260}
KNOWN_ENCODE = {-1: 0x7E, -100: 0x72, 100: 0xF2, 1000: 0xCE, -1000: 0x4E, 8000: 0xA0, 32767: 0x80, -32768: 0x00}


def g711_decode(byte: int) -> int:
    """The decoder as G.711 defines it, one byte at a time."""
    u = ~byte & 0xFF
    sign, exponent, mantissa = u & 0x80, (u >> 4) & 7, u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -magnitude if sign else magnitude


def test_the_decode_table_is_g711_for_every_byte():
    table = mulaw._table_decode(bytes(range(256)))
    assert table.dtype == np.int16
    assert [int(v) for v in table] == [g711_decode(b) for b in range(256)]
    for byte, value in KNOWN_DECODE.items():
        assert int(mulaw._table_decode(bytes([byte]))[0]) == value


@pytest.mark.parametrize("sample,code", sorted(KNOWN_ENCODE.items()))
def test_the_encode_table_gives_the_known_codes(sample, code):
    assert mulaw._table_encode(np.array([sample], dtype=np.int16)) == bytes([code])


def test_the_encode_table_inverts_the_decoder_and_rounds_to_the_nearest_step():
    every_code = mulaw._table_decode(bytes(range(256)))
    # Each decoded level encodes back to a code that decodes to the same level (0xFF and 0x7F are both 0).
    again = mulaw._table_decode(mulaw._table_encode(every_code))
    assert np.array_equal(again, every_code)
    # Any sample lands on a level within one quantization step of it.
    samples = np.arange(-32768, 32768, 7, dtype=np.int16)
    levels = mulaw._table_decode(mulaw._table_encode(samples)).astype(np.int32)
    error = np.abs(levels - samples.astype(np.int32))
    step = np.maximum(8, (np.abs(samples.astype(np.int32)) >> 4) + 8)
    assert np.all(error <= step)


def test_both_paths_of_the_public_codec_agree():
    rng = np.random.default_rng(7)
    speech = (rng.standard_normal(4000) * 4000).clip(-32768, 32767).astype(np.int16)
    frame = speech[:160]  # short: the C codec when there is one; long: the table
    assert mulaw.encode(frame) == mulaw._table_encode(frame)
    assert mulaw.encode(speech) == mulaw._table_encode(speech)
    encoded = mulaw._table_encode(speech)
    assert np.array_equal(mulaw.decode(encoded), mulaw._table_decode(encoded))
    assert mulaw.decode(encoded).flags.writeable and mulaw._table_decode(encoded).flags.writeable
