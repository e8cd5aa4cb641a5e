"""CPIM, delivery notices and is-composing: as Linphone sends them, and as a stranger would.

The Linphone bodies were captured from linphonec 5.1.65 (Debian's linphone-cli) with
`cpim_in_basic_chat_rooms_enabled=1` through the lab's Kamailio (README "Chat clients").
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from agent.config.load import parse_config
from agent.core import chat, cpim, imdn
from agent.core.agent import Agent
from agent.core.events import MqttConnected, MqttMessage, MqttPublished
from agent.core.receipts import MAX_TRACKED
from agent.core.registration import RegState
from lab.fakes import FakeLink, FakeNotifier, FakeOutbox, FakePins, FakeSip, message

# A chat message as linphonec sends it (its own From and To were owner and agent).
LINPHONE_MESSAGE = (
    "From: <sip:owner@pbx.example.org>\r\nTo: <sip:porch@pbx.example.org>\r\n"
    "DateTime: 2026-12-01T03:23:24Z\r\nNS: imdn <urn:ietf:params:imdn>\r\n"
    "imdn.Message-ID: Fo8k6As19CJd\r\n"
    "imdn.Disposition-Notification: positive-delivery, negative-delivery, display\r\n"
    "\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\non lamp"
)
# The notice linphonec sent for a message of ours, before it deflated it.
LINPHONE_NOTICE = (
    "From: <sip:owner@pbx.example.org>\r\nTo: <sip:porch@pbx.example.org>\r\n"
    "DateTime: 2026-12-01T03:23:24Z\r\n\r\n"
    "Content-Disposition: notification\r\nContent-Type: message/imdn+xml\r\n"
    "Content-Length: {length}\r\n\r\n"
    '<?xml version="1.0" encoding="UTF-8" standalone="no" ?><imdn xmlns="urn:ietf:params:'
    'xml:ns:imdn"><message-id>{id}</message-id><datetime>2026-12-01T03:23:07Z</datetime>'
    "<{kind}><status><{status}/></status></{kind}></imdn>"
)
COMPOSING = (
    '<?xml version="1.0" encoding="UTF-8"?><isComposing xmlns="urn:ietf:params:xml:ns:'
    'im-iscomposing"><state>active</state><contenttype>text/plain</contenttype></isComposing>'
)


def linphone(text: str = "on lamp", message_id: str = "Fo8k6As19CJd") -> str:
    """LINPHONE_MESSAGE with another text and Message-ID (its Content-Length right)."""
    size = len(text.encode())
    return (
        LINPHONE_MESSAGE.replace("Fo8k6As19CJd", message_id)
        .replace("Content-Length: 7", f"Content-Length: {size}")
        .replace("on lamp", text)
    )


def cpim_message(body: str = LINPHONE_MESSAGE, **overrides: object):  # type: ignore[no-untyped-def]
    return replace(message(body=body, content_type="message/cpim"), **overrides)


def notice_message(message_id: str, status: str = "delivered", **overrides: object):  # type: ignore[no-untyped-def]
    kind = "display-notification" if status == "displayed" else "delivery-notification"
    length = 256 - len("AGENT-0001delivered") + len(message_id + status) + 2 * (len(kind) - 21)
    text = LINPHONE_NOTICE.format(id=message_id, status=status, length=length, kind=kind)
    fields: dict[str, object] = {
        "raw_body": zlib.compress(text.encode()),
        "content_encoding": "deflate",
        "body": "\ufffd",
        **overrides,
    }
    return cpim_message(**fields)


# -- reading (pure) ---------------------------------------------------------------------


def test_linphones_message_is_unwrapped_and_asks_for_both_notices() -> None:
    reading = chat.read(cpim_message())
    assert (reading.kind, reading.problem) == ("message", None)
    assert (reading.message.body, reading.message.content_type) == ("on lamp", "text/plain")
    assert reading.message.cpim_from == "<sip:owner@pbx.example.org>"
    assert reading.request == imdn.Request("Fo8k6As19CJd", True, True, "2026-12-01T03:23:24Z")


def test_linphones_deflated_notice_is_read() -> None:
    reading = chat.read(notice_message("abc-1", "displayed"))
    assert reading.kind == "notice"
    assert reading.notice == imdn.Notice("abc-1", "displayed")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/im-iscomposing+xml", COMPOSING),
        ("message/cpim", LINPHONE_MESSAGE.split("\r\n\r\n")[0]
         + "\r\n\r\nContent-Type: application/im-iscomposing+xml\r\n\r\n" + COMPOSING),
    ],
)  # fmt: skip
def test_is_composing_is_never_a_message(content_type: str, body: str) -> None:
    assert chat.read(message(body=body, content_type=content_type)).kind == "composing"


def test_a_namespace_prefix_is_resolved_not_matched_by_name() -> None:
    # A client may call the IMDN namespace anything; "imdn." in another namespace is not it.
    renamed = LINPHONE_MESSAGE.replace("NS: imdn", "NS: x").replace("imdn.", "x.")
    assert chat.read(cpim_message(renamed)).request is not None
    foreign = LINPHONE_MESSAGE.replace("<urn:ietf:params:imdn>", "<urn:example:other>")
    assert chat.read(cpim_message(foreign)).request is None


HEADERS = LINPHONE_MESSAGE.split("\r\n\r\n")[0]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("no blank line at all", "no blank line"),
        ("From: <sip:a@b>\r\n\r\nContent-Type: text/plain", "no blank line after the content"),
        ("Bad Header: x\r\n\r\nContent-Type: text/plain\r\n\r\non lamp", "is not a header"),
        ("X: " + "a" * 2000 + "\r\n\r\nContent-Type: text/plain\r\n\r\non lamp", "longer than"),
        ("".join(f"X{i}: y\r\n" for i in range(40)) + "\r\nContent-Type: text/plain\r\n\r\nhi",
         "more than 32"),
        ("NS: garbage\r\n\r\nContent-Type: text/plain\r\n\r\non lamp", "NS header"),
        (HEADERS + "\r\n\r\nContent-Type: text/plain\r\nContent-Length: 99\r\n\r\non lamp",
         "shorter than its Content-Length"),
        (HEADERS + "\r\n\r\nContent-Type: text/plain\r\nContent-Length: -1\r\n\r\non lamp",
         "not a number"),
        (HEADERS + "\r\n\r\nContent-Type: message/cpim\r\n\r\n" + LINPHONE_MESSAGE,
         "message/cpim inside message/cpim"),
    ],
)  # fmt: skip
def test_hostile_wrappers_are_relayed_never_obeyed(body: str, problem: str) -> None:
    reading = chat.read(cpim_message(body))
    assert reading.kind == "message"
    assert reading.problem is not None and problem in reading.problem


@pytest.mark.parametrize(
    ("raw", "encoding", "problem"),
    [
        (b"not deflated at all", "deflate", "does not inflate"),
        (zlib.compress(b"\0" * 10_000_000), "deflate", "inflates to more than 16384"),
        (b"x", "br", "is not deflate or gzip"),
    ],
)
def test_encodings_are_bounded(raw: bytes, encoding: str, problem: str) -> None:
    msg = message(body="\ufffd", content_type="text/plain")
    reading = chat.read(replace(msg, raw_body=raw, content_encoding=encoding))
    assert reading.problem is not None and problem in reading.problem


@pytest.mark.parametrize(
    ("xml", "problem"),
    [
        (b"<imdn", "not XML"),
        (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><imdn/>', "declarations"),
        (b"<other/>", "is not imdn"),
        (b'<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>a b</message-id></imdn>',
         "no usable message-id"),
        (b'<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>a</message-id></imdn>',
         "no notification"),
        (b'<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>a</message-id>'
         b"<display-notification><status><delivered/></status></display-notification></imdn>",
         "without a known status"),
        (b"<a>" + b"x" * 5000 + b"</a>", "longer than"),
    ],
)  # fmt: skip
def test_hostile_notices_are_refused(xml: bytes, problem: str) -> None:
    with pytest.raises(imdn.ImdnError, match=problem):
        imdn.parse_notice(xml)


def test_a_message_id_that_would_need_escaping_asks_for_nothing() -> None:
    hostile = LINPHONE_MESSAGE.replace("Fo8k6As19CJd", "</message-id><x>")
    assert chat.read(cpim_message(hostile)).request is None


def test_a_built_notice_reads_back() -> None:
    body = cpim.build(
        "sip:porch@pbx.example.org",
        "sip:owner@pbx.example.org",
        imdn.CONTENT_TYPE,
        imdn.notice_xml("Fo8k6As19CJd", "displayed", "2026-12-01T03:23:24Z"),
        datetime="2026-12-01T03:23:25Z",
        content_headers=(("Content-Disposition", "notification"),),
    )
    assert chat.read(cpim_message(body)).notice == imdn.Notice("Fo8k6As19CJd", "displayed")


# -- the agent (recording fakes) ------------------------------------------------------------

CONFIG = """
[device]
id = "porch"
[sip]
uri = "sip:porch@pbx.example.org"
{sip}
[sip.limits]
stranger_answers_per_s = 1
[access]
allow = ["sip:owner@pbx.example.org"]
[mqtt]
host = "localhost"
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
"""


def build(tmp_path: Path, routed: bool = True) -> tuple[Agent, FakeSip, FakeLink, FakePins]:
    sip_keys = 'registrar = "sip:pbx.example.org"\npassword = "pw"' if routed else ""
    config = parse_config(CONFIG.format(sip=sip_keys))
    sip, mqtt, pins = FakeSip(), FakeLink(), FakePins()
    sip.routed = routed
    agent = Agent(config, sip, pins, mqtt, FakeNotifier(), outbox=FakeOutbox())
    mqtt.turn_ends = agent.flush
    agent.started_sip()
    agent.on_registration(RegState("registered", 200, "OK", 300))
    agent.handle(MqttConnected())
    return agent, sip, mqtt, pins


def notices(sip: FakeSip) -> list[tuple[str, imdn.Notice | None]]:
    """(where, what) of every notice the agent sent."""
    return [
        (to, chat.read(cpim_message(body)).notice)
        for (to, body, _), kind in zip(sip.sent, sip.content_types, strict=True)
        if kind == "message/cpim"
    ]


def test_a_linphone_command_is_obeyed_delivered_and_displayed(tmp_path: Path) -> None:
    agent, sip, mqtt, pins = build(tmp_path)
    agent.on_message(cpim_message(to_uri="<sip:alias@pbx.example.org>"))  # whatever To says
    assert (
        pins.state["gate"] is False
        and sip.sent[1][1] == "error: unknown output 'lamp' (outputs: gate)"
    )
    assert notices(sip) == [
        ("sip:owner@pbx.example.org", imdn.Notice("Fo8k6As19CJd", "delivered")),
        ("sip:owner@pbx.example.org", imdn.Notice("Fo8k6As19CJd", "displayed")),
    ]
    # A notice's CPIM From is the account's identity, as its SIP From (Linphone checks it).
    assert {cpim.parse(body.encode()).sender for _, body, _ in sip.sent[::2]} == {
        "<sip:porch@pbx.example.org>"
    }
    agent.on_message(cpim_message(linphone("on gate")))
    assert pins.state["gate"] is True
    record = json.loads(mqtt.last("sipagent/porch/message/in"))
    assert (record["from"], record["cpim_from"]) == (
        '"Owner" <sip:owner@pbx.example.org>',
        "<sip:owner@pbx.example.org>",
    )
    assert (record["body"], record["content_type"]) == ("on gate", "text/plain")


def test_a_cpim_from_claiming_the_owner_changes_nothing(tmp_path: Path) -> None:
    agent, sip, mqtt, pins = build(tmp_path)
    forged = linphone("on gate")  # CPIM From: the owner
    agent.on_message(cpim_message(forged, from_uri="<sip:eve@pbx.example.org>"))
    assert pins.state["gate"] is False
    record = json.loads(mqtt.last("sipagent/porch/message/in"))
    assert (record["authorized"], record["cpim_from"]) == (False, "<sip:owner@pbx.example.org>")
    # Everything went to eve, through the proxy: never to the address the wrapper names.
    assert {to for to, _, _ in sip.sent} == {"sip:eve@pbx.example.org"}


def test_notices_to_strangers_stay_within_their_budget(tmp_path: Path) -> None:
    agent, sip, _, _ = build(tmp_path)
    for i in range(50):
        body = linphone("hello", f"id{i}")
        agent.on_message(cpim_message(body, from_uri=f"<sip:s{i}@pbx.example.org>"))
    # 1/s with a burst of 2 (agent.core.budget): 50 requests for 50 notices get at most a few.
    assert len(sip.sent) <= 3
    assert agent.counters.get("sip.notice.stranger_budget.dropped") >= 47


def test_in_direct_mode_the_owners_from_gets_no_more_notices_than_a_strangers(
    tmp_path: Path,
) -> None:
    agent, sip, _, _ = build(tmp_path, routed=False)
    for i in range(50):
        body = linphone("hello", f"id{i}")
        agent.on_message(cpim_message(body))  # the owner's From, forged or not
    assert len(notices(sip)) <= 3


def test_typing_and_unknown_notices_are_neither_relayed_nor_answered(tmp_path: Path) -> None:
    agent, sip, mqtt, _ = build(tmp_path)
    agent.on_message(message(body=COMPOSING, content_type="application/im-iscomposing+xml"))
    agent.on_message(notice_message("not-ours"))
    broken = LINPHONE_NOTICE.format(id="x", status="?", length=0, kind="y").encode()
    agent.on_message(notice_message("broken", raw_body=zlib.compress(broken)))
    agent.flush()
    assert sip.sent == []
    assert not [t for t, _, _ in mqtt.published if t.endswith("/message/in")]
    assert agent.counters.get("sip.composing.ignored") == 1
    assert agent.counters.get("sip.notice.unknown.dropped") == 1
    assert agent.counters.get("sip.notice.unreadable.dropped") == 1


def test_notices_for_our_sends_reach_message_sent_only_from_the_recipient(tmp_path: Path) -> None:
    agent, sip, mqtt, _ = build(tmp_path)
    request = {"id": "m1", "to": "sip:owner@pbx.example.org", "body": "hi", "notify": True}
    agent.handle(MqttMessage("sipagent/porch/message/send", json.dumps(request).encode(), False))
    (to, body, token), content_type = sip.sent[0], sip.content_types[0]
    assert (to, token, content_type) == ("sip:owner@pbx.example.org", "m1", "message/cpim")
    sent = chat.read(cpim_message(body))
    assert sent.message.body == "hi" and sent.request is not None
    message_id = sent.request.message_id
    agent.on_message_status("m1", to, 200, "OK")
    # eve cannot tell us owner read it; owner can.
    agent.on_message(notice_message(message_id, "displayed", from_uri="<sip:eve@pbx.example.org>"))
    agent.on_message(notice_message(message_id, "delivered"))
    agent.on_message(notice_message(message_id, "displayed"))
    agent.flush()
    records = [json.loads(p) for t, p, _ in mqtt.published if t.endswith("/message/sent")]
    assert [r.get("delivery") for r in records] == [None, "delivered", "displayed"]
    assert all(r["id"] == "m1" for r in records)
    assert agent.counters.get("sip.notice.foreign.dropped") == 1


def test_tracked_sends_are_bounded(tmp_path: Path) -> None:
    agent, _, _, _ = build(tmp_path)
    for i in range(MAX_TRACKED + 10):
        agent.receipts.wrap(f"m{i}", "sip:owner@pbx.example.org", "sip:porch@x", "hi", "text/plain")
    assert agent.counters.get("sip.notice.tracked.forgotten") == 10


# -- edges (scripts/mutation.py): the notices' wire format, what ends tracking, who pays ----

DATETIME = re.compile(r"^DateTime: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\r?$", re.M)
MESSAGE_ID = re.compile(r"^imdn\.Message-ID: ([A-Za-z0-9_-]{16})\r?$", re.M)


def test_a_notice_on_the_wire_as_rfc_5438_writes_it(tmp_path: Path) -> None:
    agent, sip, _, _ = build(tmp_path)
    agent.on_message(cpim_message(linphone("status")))
    assert agent.counters.get("sip.notice.delivered.sent") == 1
    assert agent.counters.get("sip.notice.displayed.sent") == 1
    body = sip.sent[0][1]
    assert sip.content_types[0] == "message/cpim"
    assert DATETIME.search(body) and MESSAGE_ID.search(body)
    assert "\r\nContent-Disposition: notification\r\n" in body
    assert "To: <sip:owner@pbx.example.org>\r\n" in body
    assert "Content-Type: message/imdn+xml" in body
    # The notice dates the message by its own DateTime, not by when it arrived.
    assert "<datetime>2026-12-01T03:23:24Z</datetime>" in body


def test_our_notified_send_asks_for_every_notice_with_a_fresh_message_id(tmp_path: Path) -> None:
    agent, sip, _, _ = build(tmp_path)
    for token in ("a", "b"):
        request = {"id": token, "to": "sip:owner@pbx.example.org", "body": "hi", "notify": True}
        agent.handle(
            MqttMessage("sipagent/porch/message/send", json.dumps(request).encode(), False)
        )
    bodies = [body for _, body, _ in sip.sent]
    assert all(DATETIME.search(b) for b in bodies)
    assert all(
        "imdn.Disposition-Notification: positive-delivery, negative-delivery, display" in b
        for b in bodies
    )
    ids = [MESSAGE_ID.search(b) for b in bodies]
    assert all(ids) and len({m.group(1) for m in ids if m}) == 2


@pytest.mark.parametrize(
    ("asked", "statuses"),
    [("positive-delivery", ["delivered"]), ("display", ["displayed"]), ("negative-delivery", [])],
)
def test_only_the_notices_asked_for_are_sent(
    tmp_path: Path, asked: str, statuses: list[str]
) -> None:
    agent, sip, _, _ = build(tmp_path)
    body = linphone("status").replace("positive-delivery, negative-delivery, display", asked)
    agent.on_message(cpim_message(body))
    assert [n.status for _, n in notices(sip) if n is not None] == statuses


def test_the_owner_through_the_proxy_gets_every_notice_outside_the_strangers_budget(
    tmp_path: Path,
) -> None:
    agent, sip, _, _ = build(tmp_path)  # stranger_answers_per_s = 1: a burst of 2
    for i in range(5):
        agent.on_message(cpim_message(linphone("hello", f"id{i}")))
    assert len(notices(sip)) == 10
    assert agent.counters.get("sip.notice.stranger_budget.dropped") == 0


def _notified_send(agent: Agent, sip: FakeSip, token: str) -> str:
    request = {"id": token, "to": "sip:owner@pbx.example.org", "body": "hi", "notify": True}
    agent.handle(MqttMessage("sipagent/porch/message/send", json.dumps(request).encode(), False))
    to, body, _ = sip.sent[-1]
    agent.on_message_status(token, to, 200, "OK")  # sent: at most 100 wait (agent.core.outgoing)
    reading = chat.read(cpim_message(body))
    assert reading.request is not None
    return reading.request.message_id


@pytest.mark.parametrize("final", ["failed", "forbidden", "error", "displayed"])
def test_a_final_notice_ends_the_tracking_and_a_delivered_one_does_not(
    tmp_path: Path, final: str
) -> None:
    agent, sip, mqtt, _ = build(tmp_path)
    message_id = _notified_send(agent, sip, "m1")
    agent.on_message(notice_message(message_id, "delivered"))
    agent.on_message(notice_message(message_id, final))
    agent.on_message(notice_message(message_id, "displayed"))  # too late: not ours any more
    agent.flush()
    records = [json.loads(p) for t, p, _ in mqtt.published if t.endswith("/message/sent")]
    assert [r for r in records if "delivery" in r] == [
        {"id": "m1", "to": "sip:owner@pbx.example.org", "delivery": "delivered"},
        {"id": "m1", "to": "sip:owner@pbx.example.org", "delivery": final},
    ]
    assert agent.counters.get(f"sip.notice.{final}.received") == 1
    assert agent.counters.get("sip.notice.unknown.dropped") == 1


def test_the_oldest_tracked_send_is_forgotten_first(tmp_path: Path) -> None:
    agent, sip, mqtt, _ = build(tmp_path)
    ids = [_notified_send(agent, sip, f"m{i}") for i in range(MAX_TRACKED + 1)]
    agent.on_message(notice_message(ids[0], "delivered"))
    agent.on_message(notice_message(ids[1], "delivered"))
    acked = 0
    while acked < len(mqtt.events):  # the broker acknowledges: the relay sends the rest
        agent.handle(MqttPublished(mqtt.events[acked][0]))
        acked += 1
        agent.flush()
    records = [json.loads(p) for t, p, _ in mqtt.published if t.endswith("/message/sent")]
    assert [r["id"] for r in records if "delivery" in r] == ["m1"]
    assert agent.counters.get("sip.notice.tracked.forgotten") == 1


# -- edges (scripts/mutation.py): what each unreadable wrapper reads as ---------------------

PLAIN_CPIM = "From: <sip:owner@pbx.example.org>\r\nTo: <sip:porch@pbx.example.org>\r\n\r\n{inner}"


def test_an_unknown_encoding_is_a_message_relayed_as_it_came() -> None:
    msg = message(body="on gate", content_encoding="br")  # type: ignore[arg-type]
    reading = chat.read(msg)
    assert (reading.kind, reading.message, reading.problem) == (
        "message",
        msg,
        "Content-Encoding 'br' is not deflate or gzip",
    )


def test_a_deflated_body_that_is_not_utf8_reads_with_replacement_characters() -> None:
    msg = replace(message(), raw_body=zlib.compress(b"on \xff"), content_encoding="deflate")
    assert chat.read(msg).message.body == "on \ufffd"


def test_an_unreadable_wrapper_is_a_message_with_its_problem() -> None:
    msg = cpim_message("no headers at all")
    reading = chat.read(msg)
    assert (reading.kind, reading.message) == ("message", msg)
    assert reading.problem is not None and reading.problem.startswith("message/cpim: ")


def test_a_wrapper_in_a_wrapper_is_read_once_and_never_obeyed() -> None:
    inner = "Content-Type: message/cpim\r\n\r\n" + PLAIN_CPIM.format(inner="")
    reading = chat.read(cpim_message(PLAIN_CPIM.format(inner=inner)))
    assert (reading.kind, reading.problem) == ("message", "message/cpim inside message/cpim")
    assert reading.message.content_type == "message/cpim"
    assert reading.message.cpim_from == "<sip:owner@pbx.example.org>"


def test_a_wrapped_text_without_a_content_type_is_plain_text() -> None:
    reading = chat.read(cpim_message(PLAIN_CPIM.format(inner="Subject: x\r\n\r\non gate")))
    assert (reading.kind, reading.problem) == ("message", None)
    assert (reading.message.body, reading.message.content_type) == ("on gate", "text/plain")


def test_typing_inside_a_wrapper_is_typing() -> None:
    inner = "Content-Type: application/im-iscomposing+xml\r\n\r\n" + COMPOSING
    msg = cpim_message(PLAIN_CPIM.format(inner=inner))
    reading = chat.read(msg)
    assert (reading.kind, reading.message) == ("composing", msg)


def test_an_unreadable_notice_is_a_notice_with_its_problem() -> None:
    msg = message(body="<not-imdn/>", content_type="message/imdn+xml")
    reading = chat.read(msg)
    assert (reading.kind, reading.notice, reading.message) == ("notice", None, msg)
    assert reading.problem is not None and reading.problem.startswith("delivery notice: ")


@pytest.mark.parametrize(
    ("content_type", "media"),
    [("Text/Plain ; charset=utf-8; format=flowed", "text/plain"), ("", ""), (" A/B ", "a/b")],
)
def test_media_type(content_type: str, media: str) -> None:
    assert chat.media_type(content_type) == media


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"From: <sip:a@b>\n\nContent-Length: 1234567890\n\nx", "Content-Length '1234567890'"),
        (b"From: <sip:a@b>\n\nContent-Length: 5\n\nabc", "content shorter than its"),
        (b"Fr om: <sip:a@b>\n\nContent-Type: text/plain\n\nx", "is not a header"),
        (b"Fr\tom: <sip:a@b>\n\nContent-Type: text/plain\n\nx", "is not a header"),
        (b"NS: <>x\n\nContent-Type: text/plain\n\nx", "NS header"),
        (b"X: " + b"y" * 998 + b"\n\nContent-Type: t/p\n\nx", "longer than 1000 characters"),
    ],
)
def test_cpim_refuses_what_it_cannot_read(body: bytes, problem: str) -> None:
    with pytest.raises(cpim.CpimError, match=problem.replace("(", r"\(")):
        cpim.parse(body)


def test_cpim_reads_its_bounds_inclusive_and_the_default_namespace() -> None:
    body = b"X: " + b"y" * 997 + b"\nNS: <urn:x>\nNS: p <urn:y>\n\nContent-Length: 123456789\n\n"
    with pytest.raises(cpim.CpimError, match="shorter"):  # 9 digits is a number
        cpim.parse(body + b"x")
    parsed = cpim.parse(body.replace(b"123456789", b"000000002") + b"abc")
    assert parsed.content == b"ab"
    assert parsed.namespaces == (("", "urn:x"), ("p", "urn:y"))
    assert parsed.content_type == ""


def test_a_notice_of_exactly_the_bound_is_read_one_byte_more_is_not() -> None:
    xml = imdn.notice_xml("Fo8k6As19CJd", "delivered", "2026-12-01T03:23:24Z").encode()
    exact = xml + b" " * (imdn.MAX_XML_BYTES - len(xml))
    assert imdn.parse_notice(exact) == imdn.Notice("Fo8k6As19CJd", "delivered")
    with pytest.raises(imdn.ImdnError, match="longer than 4096 bytes"):
        imdn.parse_notice(exact + b" ")


def test_cpim_headers_that_are_not_utf8_read_with_replacement_characters() -> None:
    parsed = cpim.parse(b"From: <sip:\xff@b>\n\nContent-Type: text/plain\n\nx")
    assert parsed.sender == "<sip:\ufffd@b>"


def test_cpim_without_message_headers_or_with_a_leading_line_break_is_read() -> None:
    assert cpim.parse(b"\n\nContent-Type: text/plain\n\nx").content == b"x"
    parsed = cpim.parse(b"\r\nFrom: <sip:a@b>\r\n\r\nContent-Type: text/plain\r\n\r\nx")
    assert parsed.sender == "<sip:a@b>"
    assert parsed.content_headers == (("content-type", "text/plain"),)


def test_a_cpim_line_without_a_colon_is_no_header() -> None:
    with pytest.raises(cpim.CpimError, match="is not a header"):
        cpim.parse(b"garbage\n\nContent-Type: text/plain\n\nx")


@pytest.mark.parametrize(
    ("text", "message_id"),
    [(None, None), ("", None), (" a1 ", "a1"), ("a" * 128, "a" * 128), ("a" * 129, None)],
)
def test_a_message_id_we_may_echo(text: str | None, message_id: str | None) -> None:
    assert cpim.message_id(text) == message_id


def test_the_identity_encoding_is_no_encoding() -> None:
    reading = chat.read(message(body="on gate", content_encoding="Identity"))  # type: ignore[arg-type]
    assert (reading.kind, reading.problem, reading.message.body) == ("message", None, "on gate")
