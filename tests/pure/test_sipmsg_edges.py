"""Reading what a stranger sends (agent.core.sipmsg) on its edges: bodies with blank lines,
bare line feeds, folded headers, the header bound, quotes and brackets in names, odd hosts.

The oracle is RFC 3261's grammar (7.3 headers and folding, 20.10 Contact, 19.1 SIP URIs):
each expected value is read off the request by hand.
"""

from __future__ import annotations

import pytest

from agent.core.sipmsg import (
    MAX_HEADERS,
    header_tag,
    host_of,
    params_of,
    parse_request,
    split_list,
    uri_host,
)
from agent.core.siptext import original_bytes

HEAD = "MESSAGE sip:agent@192.0.2.1 SIP/2.0"


def raw(*headers: str, body: str = "", eol: str = "\r\n") -> str:
    return eol.join([HEAD, *headers]) + eol + eol + body


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
@pytest.mark.parametrize("as_bytes", [True, False])
def test_a_body_with_blank_lines_in_it_is_kept_whole(eol: str, as_bytes: bool) -> None:
    body = f"first{eol}{eol}second{eol}{eol}third"
    text = raw("Call-ID: a", "CSeq: 1 MESSAGE", body=body, eol=eol)
    request = parse_request(text.encode() if as_bytes else text)
    assert request is not None
    assert request.body == body.encode()
    assert request.first("call-id") == "a"
    assert request.first("cseq") == "1 MESSAGE"


def test_a_request_without_a_body_has_an_empty_one() -> None:
    request = parse_request(HEAD + "\r\nCall-ID: a\r\n")
    assert request is not None
    assert (request.body, request.first("call-id")) == (b"", "a")


@pytest.mark.parametrize("fold", [" ", "\t", "  \t"])
def test_a_folded_header_reads_as_one_line(fold: str) -> None:
    request = parse_request(raw("Subject: one", f"{fold}two", "Call-ID: c"))
    assert request is not None
    assert request.first("subject") == "one two"
    assert request.first("call-id") == "c"


def test_only_the_first_headers_up_to_the_bound_are_read() -> None:
    filler = [f"X-{i}: {i}" for i in range(MAX_HEADERS - 1)]
    request = parse_request(raw(*filler, "Call-ID: last", "CSeq: 1 MESSAGE"))
    assert request is not None
    assert request.first("call-id") == "last"  # the 200th header
    assert request.first("cseq") is None  # the 201st
    assert len(request.headers) == MAX_HEADERS


def test_a_header_name_with_a_space_is_no_header() -> None:
    request = parse_request(raw("Call ID: x", "Call-ID: y"))
    assert request is not None
    assert request.headers == (("call-id", "y"),)


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        (("Call-ID: a", "CSeq: 1   MESSAGE", "From: <sip:x@h>;tag=f"), "a|1 MESSAGE|f"),
        (("Call-ID: a", "CSeq: 2 MESSAGE", "From: <sip:x@h>"), "a|2 MESSAGE|"),
        (("Call-ID: a", "CSeq: 2 MESSAGE"), "a|2 MESSAGE|"),
        (("Call-ID: a",), None),
        (("CSeq: 2 MESSAGE",), None),
    ],
)
def test_the_retransmission_key(headers: tuple[str, ...], key: str | None) -> None:
    request = parse_request(raw(*headers))
    assert request is not None
    assert request.key() == key


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ('"a>b" <sip:x@h;tag=inside>', None),  # a tag inside the URI is the URI's
        ('"a>b" <sip:x@h;tag=inside>;tag=outer', "outer"),
        ("<sip:x@h>;tag=t1;foo=1", "t1"),
        ("sip:x@h;tag=t2", "t2"),
        ("<sip:x@h>", None),
    ],
)
def test_header_tag(value: str, tag: str | None) -> None:
    assert header_tag(value) == tag


@pytest.mark.parametrize(
    ("value", "params"),
    [
        ('<sip:x@h;lr>;expires=60;q="0.5"', {"expires": "60", "q": "0.5"}),
        ('"a>b" <sip:x@h;transport=tcp>;Expires=5', {"expires": "5"}),
        ("sip:x@h;transport=tcp;lr", {"transport": "tcp", "lr": ""}),
        ("<sip:x@h> ;received=192.0.2.7", {"received": "192.0.2.7"}),
        ("<sip:x@h>", {}),
        ("sip:x@h", {}),
    ],
)
def test_params_of(value: str, params: dict[str, str]) -> None:
    assert params_of(value) == params


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("<sip:a@b@c.example>", "c.example"),  # the host is after the last '@'
        ("<sip:x@h.example?subject=hi>", "h.example"),
        ("<sip:x@h.example;maddr=m?x=1>", "h.example"),
        ("sip:x@H.Example:5060;transport=tcp", "h.example"),
        ("<sip:u@[2001:db8::1]:5060;transport=tcp>", "2001:db8::1"),
        ("<sips:x@h.example>", "h.example"),
        ("<tel:+15551234>", None),
        ("<x@h.example>", None),
    ],
)
def test_uri_host(value: str, host: str | None) -> None:
    assert uri_host(value) == host


@pytest.mark.parametrize(
    ("hostport", "host"),
    [
        ("h.example:5060:junk", "h.example"),
        ("[::1]:5060", "::1"),
        ("[::1]]:5060", "::1"),
        (" H.example ", "h.example"),
    ],
)
def test_host_of(hostport: str, host: str) -> None:
    assert host_of(hostport) == host


@pytest.mark.parametrize(
    ("value", "entries"),
    [
        ('"A, B" <sip:a@x>, <sip:b@x>', ['"A, B" <sip:a@x>', "<sip:b@x>"]),
        ('"say \\", hi" <sip:a@x>, <sip:b@x>', ['"say \\", hi" <sip:a@x>', "<sip:b@x>"]),
        ("<sip:a@x;p=1,2>, <sip:b@x>", ["<sip:a@x;p=1,2>", "<sip:b@x>"]),
        ("<sip:a@x>,,<sip:b@x>,", ["<sip:a@x>", "<sip:b@x>"]),
        ("a>b, c", ["a>b", "c"]),
    ],
)
def test_split_list_edges(value: str, entries: list[str]) -> None:
    assert split_list(value) == entries


def test_list_headers_are_split_and_others_are_not() -> None:
    request = parse_request(raw("Contact: <sip:a@x>, <sip:b@x>", "Subject: a, b"))
    assert request is not None
    assert request.all("contact") == ["<sip:a@x>", "<sip:b@x>"]
    assert request.all("subject") == ["a, b"]


def test_a_lone_surrogate_swig_did_not_make_is_counted_without_raising() -> None:
    data = original_bytes("a\ud800b")  # a high surrogate: never one of surrogateescape's
    assert data[:1] == b"a" and data[-1:] == b"b" and len(data) in (3, 5)
    assert original_bytes("caf\udce9") == b"caf\xe9"  # SWIG's own: the byte it stood for


def test_a_folded_line_joins_the_header_just_before_it() -> None:
    request = parse_request(raw("Call-ID: c", "CSeq: 1 MESSAGE", "Subject: one", "\ttwo"))
    assert request is not None
    assert (request.first("call-id"), request.first("subject")) == ("c", "one two")


def test_bytes_without_a_blank_line_have_no_body() -> None:
    request = parse_request((HEAD + "\r\nCall-ID: a\r\n").encode())
    assert request is not None and request.body == b""


def test_split_and_params_keep_every_character_of_a_value() -> None:
    assert split_list("<sip:X@h;p=1,2>, <sip:b@h>") == ["<sip:X@h;p=1,2>", "<sip:b@h>"]
    assert params_of('<sip:x@h>;tag=X1X;q="X"') == {"tag": "X1X", "q": "X"}
