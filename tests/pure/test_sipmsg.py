"""Reading raw SIP requests as strangers send them: never an exception, every header found."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.core.sipmsg import params_of, parse_request, split_list, uri_host
from agent.core.siptext import clean, original_bytes

REQUEST = (
    "SUBSCRIBE sip:agent@192.0.2.1 SIP/2.0\r\n"
    "v: SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bK1;maddr=evil.example,\r\n"
    " SIP/2.0/TCP 10.0.0.1\r\n"
    'f: "M\\"x, y" <sip:owner@pbx.example.org>;tag=abc\r\n'
    "t: <sip:agent@192.0.2.1>\r\n"
    "i: call-1@x\r\n"
    "CSeq: 7   SUBSCRIBE\r\n"
    "m: <sip:owner@192.0.2.9:5062;transport=tcp>\r\n"
    "Record-Route: <sip:192.0.2.50;lr>, <sip:[2001:db8::1]:5070;lr>\r\n"
    "o: presence\r\n"
    "Expires: 600\r\n"
    "l: 4\r\n"
    "\r\n"
    "body"
)


def test_a_request_reads_with_compact_forms_folding_and_lists() -> None:
    request = parse_request(REQUEST.encode())
    assert request is not None
    assert (request.method, request.uri) == ("SUBSCRIBE", "sip:agent@192.0.2.1")
    assert request.first("from") == '"M\\"x, y" <sip:owner@pbx.example.org>;tag=abc'
    assert request.all("via") == [
        "SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bK1;maddr=evil.example",
        "SIP/2.0/TCP 10.0.0.1",
    ]
    assert params_of(request.all("via")[0])["maddr"] == "evil.example"
    assert [uri_host(r) for r in request.all("record-route")] == ["192.0.2.50", "2001:db8::1"]
    assert uri_host(request.all("contact")[0]) == "192.0.2.9"
    assert (request.first("event"), request.expires, request.content_length) == ("presence", 600, 4)
    assert request.to_tag is None and not request.truncated
    assert request.key() == "call-1@x|7 SUBSCRIBE|abc"
    assert request.body == b"body"


@pytest.mark.parametrize(
    ("raw", "method"),
    [
        (b"", None),
        (b"\x00\xff\xfe garbage", None),
        (b"SIP/2.0 200 OK\r\n\r\n", None),  # a response, not a request
        (b"FOO sip:x SIP/2.0\r\n: no name\r\nbroken\r\n\r\n", "FOO"),
        (b"message sip:x SIP/2.0\n\n", "MESSAGE"),  # bare LF, lower case
    ],
)
def test_odd_input_is_no_request_or_a_request_without_the_odd_lines(
    raw: bytes, method: str | None
) -> None:
    request = parse_request(raw)
    assert (request.method if request else None) == method
    if request is not None:
        assert request.headers == ()


def test_a_body_shorter_than_its_content_length_was_cut_short() -> None:
    raw = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 5000\r\n\r\n" + b"x" * 3669
    request = parse_request(raw)
    assert request is not None and request.truncated
    assert request.content_length == 5000 and len(request.body) == 3669


def test_bytes_that_are_not_utf8_are_counted_as_sent_and_read_as_replacement() -> None:
    swig_text = b'"M\xfcller" <sip:owner@x>'.decode("utf-8", "surrogateescape")
    assert clean(swig_text) == '"M\ufffdller" <sip:owner@x>'
    assert original_bytes(swig_text) == b'"M\xfcller" <sip:owner@x>'
    clean(swig_text).encode()  # encodable as UTF-8 again
    assert clean("a\x00b") == "a\ufffdb" and clean(None) == ""


@pytest.mark.parametrize(
    ("value", "entries"),
    [
        ('"a, b" <sip:x@y>, <sip:z@w;p=1,2>', ['"a, b" <sip:x@y>', "<sip:z@w;p=1,2>"]),
        ("a,,b, ", ["a", "b"]),
    ],
)
def test_split_list_respects_quotes_and_brackets(value: str, entries: list[str]) -> None:
    assert split_list(value) == entries


@pytest.mark.parametrize(
    ("entry", "host"),
    [
        ("<sip:v@doesnotexist.example>", "doesnotexist.example"),
        ("sip:v@192.0.2.1:5060;transport=tcp", "192.0.2.1"),
        ('"x" <sips:[2001:db8::2]:5061>', "2001:db8::2"),
        ("<tel:+123>", None),
        ("*", None),
    ],
)
def test_uri_host(entry: str, host: str | None) -> None:
    assert uri_host(entry) == host


@given(st.binary(max_size=600))
def test_no_input_raises(raw: bytes) -> None:
    request = parse_request(raw)
    if request is not None:
        request.all("via")
        request.key()
        _ = request.truncated, request.to_tag, request.expires
        for _name, value in request.headers:
            params_of(value)
            uri_host(value)
