"""Where replies go, the relay record, access decisions, topics and the inbox."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest

from agent.core.access import identity_of
from agent.core.events import MqttConnected, StopRequested
from agent.core.messages import (
    CommandOutcome,
    IncomingMessage,
    relay_record,
    reply_target,
    request_key,
)
from agent.core.registration import reg_state_of
from agent.core.topics import Topics
from agent.inbox import Inbox
from lab.fakes import message


@pytest.mark.parametrize(
    ("overrides", "routed", "target"),
    [
        ({}, True, "sip:owner@pbx.example.org"),
        ({}, False, "sip:owner@192.0.2.7:40000"),
        ({"transport": "tcp"}, False, "sip:owner@192.0.2.7:40000;transport=tcp"),
        # The Contact is the sender's to write: a name to resolve, someone else's address.
        ({"contact": "<sip:v@doesnotexist.example>"}, False, "sip:owner@192.0.2.7:40000"),
        ({"contact": "<sip:owner@198.51.100.9:5062>"}, False, "sip:owner@192.0.2.7:40000"),
        ({"contact": "<sip:v@doesnotexist.example>"}, True, "sip:owner@pbx.example.org"),
        ({"from_uri": "garbage"}, False, "sip:192.0.2.7:40000"),
    ],
)
def test_reply_target(overrides: dict[str, str], routed: bool, target: str) -> None:
    assert reply_target(message(**overrides), routed=routed) == target


def test_relay_record_has_the_briefs_fields() -> None:
    msg = message()
    record = relay_record(msg, True, CommandOutcome("on", "lamp", "ok: lamp on"))
    assert record == {
        "id": msg.id,
        "from": '"Owner" <sip:owner@pbx.example.org>',
        "cpim_from": None,
        "to": "<sip:porch@pbx.example.org>",
        "body": "on lamp",
        "content_type": "text/plain",
        "received": "2026-01-02T03:04:05.006Z",
        "authorized": True,
        "truncated": False,
        "command": {"name": "on", "target": "lamp", "result": "ok: lamp on"},
    }
    assert relay_record(msg, False, None)["command"] is None
    json.dumps(record)  # serialisable as is


def test_ids_are_unique() -> None:
    assert len({message().id for _ in range(100)}) == 100


@pytest.mark.parametrize(
    ("sender", "allowed"),
    [
        ("sip:owner@pbx.example.org", True),
        ('"Owner" <sip:owner@PBX.example.org:5060;transport=tcp>;tag=x', True),
        ("sip:owner@pbx.example.org:5070", False),
        ("sip:eve@pbx.example.org", False),
        ("sips:owner@pbx.example.org", False),
        ("not a uri", False),
    ],
)
def test_a_sender_is_known_by_its_normalized_address(sender: str, allowed: bool) -> None:
    assert (identity_of(sender) in ("sip:owner@pbx.example.org",)) is allowed


def test_topics_follow_one_scheme() -> None:
    t = Topics("sipagent/porch")
    assert t.availability == "sipagent/porch/availability"
    assert t.output_state("gate") == "sipagent/porch/output/gate/state"
    assert t.output_name_from_set("sipagent/porch/output/gate/set") == "gate"
    assert t.output_name_from_set("sipagent/porch/output/a/b/set") is None
    assert t.output_name_from_set("sipagent/porch/command") is None
    assert t.message_send in t.subscriptions()


def test_inbox_wakes_once_per_drain_and_keeps_order() -> None:
    wakes: list[int] = []
    inbox = Inbox()
    inbox.set_waker(lambda: wakes.append(1))
    inbox.put(MqttConnected())
    inbox.put(StopRequested("a"))
    assert len(wakes) == 1
    assert inbox.drain() == [MqttConnected(), StopRequested("a")]
    inbox.put(StopRequested("b"))
    assert len(wakes) == 2


def test_inbox_loses_nothing_across_threads() -> None:
    inbox = Inbox()
    inbox.set_waker(lambda: None)

    def post(n: int) -> None:
        for i in range(1000):
            inbox.put(StopRequested(f"{n}-{i}"))

    threads = [threading.Thread(target=post, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    got: list[object] = []
    while any(t.is_alive() for t in threads):
        got += inbox.drain()
    for t in threads:
        t.join()
    got += inbox.drain()
    assert len(got) == 4000


@pytest.mark.parametrize(
    ("code", "expires", "unregistering", "state"),
    [
        (200, 300, False, "registered"),
        (200, 0, False, "unregistered"),
        (200, 300, True, "unregistered"),
        (401, 0, False, "failed"),
        (408, 0, False, "failed"),
        (503, 0, True, "failed"),
    ],
)
def test_registration_states(code: int, expires: int, unregistering: bool, state: str) -> None:
    assert reg_state_of(code, "x", expires, unregistering=unregistering).state == state


RAW = (
    "MESSAGE sip:agent@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n"
    "{from_header}\r\n"
    "To: <sip:agent@127.0.0.1>\r\n"
    "{call_id}\r\n"
    "CSeq:  7   MESSAGE\r\n"
    "Content-Length: 12\r\n\r\n"
    "Call-ID: body"
)


@pytest.mark.parametrize(
    ("from_header", "call_id", "key"),
    [
        ("From: <sip:o@h>;tag=abc", "Call-ID: c1@h", "c1@h|7 MESSAGE|abc"),
        ('f: "A;tag=no" <sip:o@h;tag=no>;tag=yes', "i: c2", "c2|7 MESSAGE|yes"),
        ("From: sip:o@h;TAG=x1", "call-id: c3", "c3|7 MESSAGE|x1"),
        ("From: <sip:o@h>", "Call-ID: c4", "c4|7 MESSAGE|"),
        ("From: <sip:o@h>;tag=a", "X-Nothing: 1", None),
    ],
)
def test_request_key_is_what_retransmissions_share(
    from_header: str, call_id: str, key: str | None
) -> None:
    assert request_key(RAW.format(from_header=from_header, call_id=call_id)) == key


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        # Bare LF line ends, and a body with blank lines and header-like text of its own.
        ("MESSAGE sip:a@b SIP/2.0\nCall-ID: c5\nCSeq: 1 MESSAGE\nFrom: <sip:o@h>;tag=t\n\n"
         "hi\n\nCall-ID: evil\n\nCSeq: 9 MESSAGE", "c5|1 MESSAGE|t"),
        ("MESSAGE sip:a@b SIP/2.0\r\nCall-ID: c6\r\nCSeq: 1 MESSAGE\r\n\r\n"
         "x\r\n\r\nCall-ID: evil\r\n\r\ny", "c6|1 MESSAGE|"),  # no From: an empty tag
        # A line without a colon does not end the headers.
        ("MESSAGE sip:a@b SIP/2.0\r\njunk\r\nCall-ID: c7\r\nCSeq: 2 MESSAGE\r\n\r\n",
         "c7|2 MESSAGE|"),
        # A '>' inside the quoted display name: the tag is the one after the URI.
        ('MESSAGE sip:a@b SIP/2.0\r\nFrom: "a>b;tag=no" <sip:o@h>;tag=yes\r\nCall-ID: c8\r\n'
         "CSeq: 3 MESSAGE\r\n\r\n", "c8|3 MESSAGE|yes"),
    ],
)  # fmt: skip
def test_request_key_reads_only_the_headers(raw: str, key: str) -> None:
    assert request_key(raw) == key


def test_a_new_message_keeps_its_key_and_defaults_its_type_and_time() -> None:
    before = datetime.now(UTC)
    msg = IncomingMessage.new(
        from_uri="sip:o@h", to_uri="sip:a@b", contact="", body="x", content_type="",
        source="192.0.2.1:5060", transport="udp", request_key="c|1 MESSAGE|t",
    )  # fmt: skip
    assert msg.request_key == "c|1 MESSAGE|t"
    assert msg.content_type == "text/plain"
    assert msg.received.tzinfo is UTC and before <= msg.received <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("from_uri", "target"),
    [("<Xbad uri>", "Xbad uri"), (" <also bad> ", "also bad")],
)
def test_a_reply_to_an_unparsable_from_goes_where_it_says(from_uri: str, target: str) -> None:
    assert reply_target(message(from_uri=from_uri), routed=True) == target


def test_records_go_out_compact_and_in_utf_8() -> None:
    from agent.core.messages import to_json

    assert to_json({"a": 1, "body": "café ✓"}) == '{"a":1,"body":"café ✓"}'.encode()
