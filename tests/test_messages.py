"""Media Streams messages: the reference's JSON parses; outbound messages have exactly Twilio's fields."""

import base64
import json

import pytest

from voxline.telephony import messages as m

STREAM = "MZ5174584e1127285e2b015e720b3d9e68"
START = '{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC7e2b7d19e3afe0f5715710b94d26db7e","streamSid":"MZ5174584e1127285e2b015e720b3d9e68","callSid":"CA45397943c1c7a49f7b7713c230107a39","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{}},"streamSid":"MZ5174584e1127285e2b015e720b3d9e68"}'
MEDIA = '{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"155","payload":"f39///////9/f39/f3//f3///v///////////39/f3///3//f39/f////3//f3///////39/f39//39/f39/f39//3//f////////39/fn9/f/9/f39/f3//f39/f/9//////3///////////39/f/////9/////////////f39/f39//39//3///3//////f39/f39///9/f39//39/fw=="},"streamSid":"MZ5174584e1127285e2b015e720b3d9e68"}'
DTMF = '{"event":"dtmf","streamSid":"MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}'
MARK = '{"event":"mark","sequenceNumber":"4","streamSid":"MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX","mark":{"name":"my label"}}'
STOP = '{"event":"stop","sequenceNumber":"378","streamSid":"MZ5174584e1127285e2b015e720b3d9e68","stop":{"accountSid":"AC7e2b7d19e3afe0f5715710b94d26db7e","callSid":"CA45397943c1c7a49f7b7713c230107a39"}}'


def test_connected_any_version():
    assert m.parse('{"event":"connected","protocol":"Call","version":"1.0.0"}') == m.Connected("Call", "1.0.0")
    assert m.parse('{"event":"connected","protocol":"Call","version":"0.2.0"}').version == "0.2.0"


def test_start():
    start = m.parse(START)
    assert isinstance(start, m.Start)
    assert start.stream_sid == STREAM
    assert start.call_sid == "CA45397943c1c7a49f7b7713c230107a39"
    assert (start.encoding, start.sample_rate, start.channels) == ("audio/x-mulaw", 8000, 1)
    assert start.custom_parameters == {}


def test_start_without_custom_parameters_and_with_unknown_fields():
    data = json.loads(START)
    del data["start"]["customParameters"]
    data["start"]["somethingNew"] = {"x": 1}
    data["extra"] = True
    start = m.parse(json.dumps(data))
    assert isinstance(start, m.Start) and start.custom_parameters == {}


def test_media_is_160_bytes_with_string_numbers():
    media = m.parse(MEDIA)
    assert isinstance(media, m.Media)
    assert len(media.payload) == 160
    assert (media.chunk, media.timestamp, media.track) == (1, 155, "inbound")


def test_dtmf_mark_stop():
    assert m.parse(DTMF) == m.Dtmf("MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "1")
    assert m.parse(MARK) == m.Mark("MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "my label")
    assert m.parse(STOP) == m.Stop(STREAM, "CA45397943c1c7a49f7b7713c230107a39")


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        "[1,2]",
        '{"event":"bogus"}',
        '{"event":"media","streamSid":"MZ1"}',
        '{"event":"media","streamSid":"MZ1","media":{"payload":"***not base64***"}}',
        '{"event":"start","start":{"callSid":"CA1"}}',
        '{"event":"mark","streamSid":"MZ1","mark":{}}',
        '{"event":"media","streamSid":"MZ1","media":{"payload":"' + "A" * 20000 + '"}}',
    ],
)
def test_malformed_messages_raise_protocol_error(bad):
    with pytest.raises(m.ProtocolError):
        m.parse(bad)


def test_outbound_media_has_exactly_the_documented_fields():
    payload = bytes(range(160))
    message = json.loads(m.media_message(STREAM, payload))
    assert message == {"event": "media", "streamSid": STREAM, "media": {"payload": base64.b64encode(payload).decode()}}
    assert set(message) == {"event", "streamSid", "media"} and set(message["media"]) == {"payload"}


def test_outbound_mark_and_clear():
    assert json.loads(m.mark_message(STREAM, "t1p0m1")) == {
        "event": "mark",
        "streamSid": STREAM,
        "mark": {"name": "t1p0m1"},
    }
    assert json.loads(m.clear_message(STREAM)) == {"event": "clear", "streamSid": STREAM}
    assert " " not in m.clear_message(STREAM)
