"""What the agent accepts on its MQTT topics: size bounds, and B/message/send field by field."""

from __future__ import annotations

import json

import pytest

from agent.core.mqtt_requests import (
    HA_STATUS_BYTES,
    MAX_ID_CHARS,
    OUTPUT_SET_BYTES,
    PRESENCE_SET_BYTES,
    PayloadBounds,
    SendRefused,
    SendRequest,
    parse_send,
)
from agent.core.topics import Topics
from agent.core.untrusted import excerpt


def send(**fields: object) -> bytes:
    return json.dumps({"to": "sip:bob@example.org", "body": "hi", **fields}).encode()


def test_every_topic_the_agent_hears_has_a_bound() -> None:
    topics = Topics("sipagent/porch", ("all",), "sipagent/group", "homeassistant")
    bounds = PayloadBounds(command_bytes=1000, send_bytes=16384)
    expected = {
        "sipagent/porch/command": 1000,
        "sipagent/group/all/command": 1000,
        "sipagent/porch/message/send": 16384,
        "sipagent/porch/presence/set": PRESENCE_SET_BYTES,
        "sipagent/porch/presence/status/set": PRESENCE_SET_BYTES,
        "sipagent/porch/presence/note/set": PRESENCE_SET_BYTES,  # a 200-character note fits
        "sipagent/porch/output/gate/set": OUTPUT_SET_BYTES,
        "homeassistant/status": HA_STATUS_BYTES,
        "sipagent/porch/output//set": HA_STATUS_BYTES,  # no output: the smallest bound
    }
    for topic, limit in expected.items():
        assert bounds.limit(topics.kind(topic)) == limit, topic
    subscribed = [*topics.subscriptions(), "homeassistant/status"]
    concrete = [t.replace("+", "gate") for t in subscribed]
    assert all(topics.kind(t) is not None for t in concrete)


@pytest.mark.parametrize(
    ("payload", "wanted"),
    [
        (send(), SendRequest(None, "sip:bob@example.org", "hi", "text/plain")),
        (send(id="a-1"), SendRequest("a-1", "sip:bob@example.org", "hi", "text/plain")),
        (send(id=17), SendRequest("17", "sip:bob@example.org", "hi", "text/plain")),
        (send(id=""), SendRequest(None, "sip:bob@example.org", "hi", "text/plain")),
        (
            send(content_type='text/plain; charset="utf-8"'),
            SendRequest(None, "sip:bob@example.org", "hi", 'text/plain; charset="utf-8"'),
        ),
        (
            send(content_type="application/vnd.x+json;v=1", body="a\r\nX-Not-A-Header: 1\r\n"),
            SendRequest(
                None,
                "sip:bob@example.org",
                "a\r\nX-Not-A-Header: 1\r\n",
                "application/vnd.x+json;v=1",
            ),
        ),
        (
            send(to='"Bob" <sip:bob@example.org;transport=tcp>'),
            SendRequest(None, '"Bob" <sip:bob@example.org;transport=tcp>', "hi", "text/plain"),
        ),
    ],
)
def test_good_send_requests(payload: bytes, wanted: SendRequest) -> None:
    assert parse_send(payload) == wanted


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        # Header injection through any field that reaches SIP.
        (send(content_type="text/plain\r\nX-Injected: yes"), '"content_type"'),
        (send(content_type="text/plain\nX-Injected: yes"), "is not a media type"),
        (send(content_type="text/plain; a=b\r\n"), "is not a media type"),
        (send(content_type='text/plain; a="b\r\nX: y"'), "is not a media type"),
        (send(content_type="text/plain, text/html"), "is not a media type"),
        (send(content_type="text"), "is not a media type"),
        (send(content_type="text/" + "x" * 200), "is not a media type"),
        (send(content_type=5), '"content_type" must be a string'),
        (send(to="sip:bob@example.org\r\nX-Injected: yes"), '"to" contains a control character'),
        (send(to='"Bob\r\nX: y" <sip:bob@example.org>'), "control character (U+000D)"),
        (send(to="sip:bob@example.org?X-Injected=yes"), "URI headers"),
        (send(to="<sip:bob@example.org?Subject=x>"), "URI headers"),
        (send(to="sip:bob@" + "a" * 600 + ".org"), '"to" longer than 512'),
        (send(to="bob"), "not a SIP URI"),
        (send(to=None), '"to" and "body" must be strings'),
        (send(body=["x"]), '"to" and "body" must be strings'),
        (send(body="\ud800"), '"body" is not UTF-8 text'),
        (send(id="a\r\nb"), '"id" contains a control character'),
        (send(id="x" * (MAX_ID_CHARS + 1)), '"id" longer than 128'),
        (send(id={"a": 1}), '"id" must be a string'),
        (send(id=True), '"id" must be a string'),
        # Poison for the parser itself.
        (b'{"to": "sip:a@b", "body": "x", "id": ' + b"9" * 5000 + b"}", "a number longer"),
        (b"[" * 100_000, "nested deeper"),
        (b'{"to": "sip:a@b", "body": ' + b"[" * 50 + b"}", "nested deeper"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[]", "expected a JSON object"),
        (b"", "invalid JSON"),
    ],
)
def test_bad_send_requests_say_why(payload: bytes, reason: str) -> None:
    with pytest.raises(SendRefused) as err:
        parse_send(payload)
    assert reason in str(err.value)
    assert "\r" not in str(err.value) and "\n" not in str(err.value)


def test_a_refusal_keeps_the_request_id_and_only_an_excerpt_of_to() -> None:
    with pytest.raises(SendRefused) as err:
        parse_send(send(id="req-9", to="sip:" + "b" * 600, content_type="x"))
    assert err.value.id == "req-9"
    assert err.value.to == excerpt("sip:" + "b" * 600) and len(err.value.to) <= 200


@pytest.mark.parametrize(
    ("payload", "reason", "id", "to"),
    [
        (b"\xff", "the payload is not UTF-8", None, ""),
        (b"[1]", 'expected a JSON object {"to": "sip:\u2026", "body": "\u2026"}', None, ""),
        (send(body=1, id=7), '"to" and "body" must be strings', "7", "sip:bob@example.org"),
        (send(to=5), '"to" and "body" must be strings', None, ""),
        (send(id=True), '"id" must be a string', None, ""),
        (send(id="i" * (MAX_ID_CHARS + 1)), '"id" longer than 128 characters', None, ""),
        (send(to="sip:" + "a" * 503 + "@b.org"), '"to" longer than 512 characters', None,
         excerpt("sip:" + "a" * 503 + "@b.org")),
        (send(to="sip:bob@example.org?subject=x"), '"to" must not carry URI headers (?\u2026)',
         None, "sip:bob@example.org?subject=x"),
        (send(body="\ud800"), '"body" is not UTF-8 text', None, "sip:bob@example.org"),
        (send(content_type=3), '"content_type" must be a string', None, "sip:bob@example.org"),
        (send(content_type="x" * 70), '"content_type" ' + repr(excerpt("x" * 70, 60))
         + " is not a media type (type/subtype, e.g. text/plain; charset=utf-8)", None,
         "sip:bob@example.org"),
        (send(content_type="text/" + "p" * 124), '"content_type" '
         + repr(excerpt("text/" + "p" * 124, 60)) + " is not a media type (type/subtype, e.g. "
         "text/plain; charset=utf-8)", None, "sip:bob@example.org"),
    ],
)  # fmt: skip
def test_every_refusal_says_exactly_why(
    payload: bytes, reason: str, id: str | None, to: str
) -> None:
    with pytest.raises(SendRefused) as refused:
        parse_send(payload)
    assert (str(refused.value), refused.value.id, refused.value.to) == (reason, id, to)


def test_the_bounds_themselves_are_allowed() -> None:
    at_bounds = send(
        id="i" * MAX_ID_CHARS,
        to="sip:" + "a" * 502 + "@b.org",  # 512 characters
        content_type="text/" + "p" * 123,  # 128 characters
    )
    request = parse_send(at_bounds)
    assert (len(request.id or ""), len(request.to), len(request.content_type)) == (128, 512, 128)
    # A '?' in the user part is no URI header; one after the host is.
    assert parse_send(send(to="sip:who?@example.org")).to == "sip:who?@example.org"


# -- edges (scripts/mutation.py): "notify" and "account" as the README's topic table has them --


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"notify": "yes"}, '"notify" must be true or false'),
        ({"notify": 1}, '"notify" must be true or false'),
        ({"account": 5}, '"account" must be the name of a SIP account ([a-z0-9_-]+)'),
        ({"account": "Public"}, '"account" must be the name of a SIP account ([a-z0-9_-]+)'),
        ({"account": ""}, '"account" must be the name of a SIP account ([a-z0-9_-]+)'),
    ],
)
def test_notify_and_account_are_checked(fields: dict[str, object], reason: str) -> None:
    with pytest.raises(SendRefused) as refused:
        parse_send(send(id="r", **fields))
    assert str(refused.value) == reason
    assert refused.value.id == "r"


def test_notify_and_account_are_taken() -> None:
    request = parse_send(send(notify=True, account="public_2"))
    assert (request.notify, request.account) == (True, "public_2")
    request = parse_send(send())
    assert (request.notify, request.account) == (False, None)
