"""SIP URI parsing and addresses of record."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.core.sipuri import InvalidSipUri, SipUri, address_of_record, parse_sip_uri

PARSED = [
    ("sip:porch@pbx.example.org", SipUri("sip", "porch", "pbx.example.org", None, ())),
    ("sips:porch@pbx.example.org", SipUri("sips", "porch", "pbx.example.org", None, ())),
    ("SIP:Porch@PBX.Example.ORG", SipUri("sip", "Porch", "pbx.example.org", None, ())),
    ("sip:pbx.example.org", SipUri("sip", None, "pbx.example.org", None, ())),
    ("sip:porch@pbx.example.org:5070", SipUri("sip", "porch", "pbx.example.org", 5070, ())),
    ("sip:192.0.2.10:5060", SipUri("sip", None, "192.0.2.10", 5060, ())),
    ("sip:porch@[::1]", SipUri("sip", "porch", "[::1]", None, ())),
    ("sip:porch@[2001:DB8:0::1]:5061", SipUri("sip", "porch", "[2001:db8::1]", 5061, ())),
    ("sip:pbx.example.org;lr", SipUri("sip", None, "pbx.example.org", None, (("lr", None),))),
    (
        "sip:pbx.example.org;LR;Transport=TCP",
        SipUri("sip", None, "pbx.example.org", None, (("lr", None), ("transport", "TCP"))),
    ),
    ("sip:+4930123@pbx.example.org", SipUri("sip", "+4930123", "pbx.example.org", None, ())),
    ("sip:a%20b@pbx.example.org", SipUri("sip", "a%20b", "pbx.example.org", None, ())),
    ("sip:porch@pbx.example.org?subject=hi", SipUri("sip", "porch", "pbx.example.org", None, ())),
    ("  sip:porch@pbx.example.org \n", SipUri("sip", "porch", "pbx.example.org", None, ())),
    (
        "<sip:porch@pbx.example.org;lr>",
        SipUri("sip", "porch", "pbx.example.org", None, (("lr", None),)),
    ),
    (
        '"Porch Door" <sip:porch@pbx.example.org>',
        SipUri("sip", "porch", "pbx.example.org", None, ()),
    ),
    (
        '"Say \\"hi\\" <x>" <sip:porch@pbx.example.org>',
        SipUri("sip", "porch", "pbx.example.org", None, ()),
    ),
    (
        "Porch Door <sip:porch@pbx.example.org>;tag=abc",
        SipUri("sip", "porch", "pbx.example.org", None, ()),
    ),
    ("<sip:porch@pbx.example.org> ; tag=abc", SipUri("sip", "porch", "pbx.example.org", None, ())),
]


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_parse_accepts_the_forms_people_write(text: str, expected: SipUri) -> None:
    assert parse_sip_uri(text) == expected


# (text, why): the message is "not a SIP URI: '<text>'", then " (<why>)" when there is a why.
REJECTED = [
    ("pbx.example.org", None),
    ("pbx.example.org:5060", None),
    ("tel:+4930123", None),
    ("<tel:+4930123>", None),
    ("", None),
    ("sip:", "empty host"),
    ("sip:porch@", "empty host"),
    ("sip:::1", "empty host"),
    ("sip:@pbx", "empty user part"),
    ("sip:pbx:0", "bad port '0'"),
    ("sip:pbx:65536", "bad port '65536'"),
    ("sip:pbx:x", "bad port 'x'"),
    ("sip:pbx:", "bad port ''"),
    ("sip:porch @pbx", "contains whitespace"),
    ("< sip:porch@pbx>", "contains whitespace"),
    ("sip:porch:pw@pbx", "passwords in SIP URIs are not supported"),
    ('sip:por"ch@pbx', "bad character '\"' in the user part"),
    ("sip:a%2@pbx", "bad %-escape in the user part"),
    ("sip:pbx..example.org", "bad host 'pbx..example.org'"),
    ("sip:pbx_1", "bad host 'pbx_1'"),
    ("sip:-pbx", "bad host '-pbx'"),
    ("sip:300.1.1.1", "bad IPv4 address '300.1.1.1'"),
    ("sip:[::1", "missing ']' after IPv6 address"),
    ("sip:[::g]", "bad IPv6 address '[::g]'"),
    ("sip:[::1]x", "unexpected text after the host: 'x'"),
    ("sip:pbx;", "empty parameter"),
    ("sip:pbx;=x", "empty parameter '=x'"),
    ("sip:pbx;a=", "empty parameter 'a='"),
    ('sip:pbx;a="b"', "bad character in parameter 'a=\"b\"'"),
    ("<sip:porch@pbx", "missing '>'"),
    ("sip:po<rch@pbx", "missing '>'"),
    ("sip:porch@pbx>", "'>' without '<'"),
    ("<sip:porch@pbx> x", "unexpected text after '>': 'x'"),
    ('"Porch <sip:porch@pbx>', "unterminated display name"),
    ('"Porch" sip:porch@pbx', "expected '<' after the display name"),
    ('Po"rch <sip:porch@pbx>', "bad display name"),
]


@pytest.mark.parametrize(("text", "why"), REJECTED)
def test_parse_rejects_with_a_reason(text: str, why: str | None) -> None:
    with pytest.raises(InvalidSipUri) as caught:
        parse_sip_uri(text)
    assert str(caught.value) == f"not a SIP URI: {text!r}" + (f" ({why})" if why else "")


def test_invalid_sip_uri_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a SIP URI"):
        parse_sip_uri("mailto:someone@example.org")


CANONICAL = [
    ("sip:porch@pbx.example.org", "sip:porch@pbx.example.org"),
    ("SIPS:Porch@PBX.example.org:5070;LR", "sips:Porch@pbx.example.org:5070;lr"),
    (
        '"Porch" <sip:porch@PBX.example.org;lr;transport=tcp>;tag=1',
        "sip:porch@pbx.example.org;lr;transport=tcp",
    ),
    ("sip:[0:0::1]:5060", "sip:[::1]:5060"),
    ("sip:pbx.example.org?subject=x", "sip:pbx.example.org"),
]


@pytest.mark.parametrize(("text", "expected"), CANONICAL)
def test_str_is_the_canonical_form_and_parses_back(text: str, expected: str) -> None:
    uri = parse_sip_uri(text)
    assert str(uri) == expected
    assert parse_sip_uri(str(uri)) == uri


@pytest.mark.parametrize(
    ("text", "hostport"),
    [
        ("sip:porch@pbx.example.org", "pbx.example.org"),
        ("sip:porch@pbx.example.org:5070", "pbx.example.org:5070"),
        ("sip:[::1]:5060", "[::1]:5060"),
    ],
)
def test_hostport(text: str, hostport: str) -> None:
    assert parse_sip_uri(text).hostport == hostport


AORS = [
    ("sip:porch@pbx.example.org", "sip:porch@pbx.example.org"),
    ("sip:Porch@PBX.Example.org", "sip:Porch@pbx.example.org"),
    ("sip:porch@pbx.example.org:5060", "sip:porch@pbx.example.org"),
    ("sip:porch@pbx.example.org:5061", "sip:porch@pbx.example.org:5061"),
    ("sips:porch@pbx.example.org:5061", "sips:porch@pbx.example.org"),
    ("sips:porch@pbx.example.org:5060", "sips:porch@pbx.example.org:5060"),
    ("sip:porch@pbx.example.org;transport=tcp;lr", "sip:porch@pbx.example.org"),
    ("sip:porch@pbx.example.org?subject=hello", "sip:porch@pbx.example.org"),
    ('"Owner" <sip:owner@pbx.example.org:5060;transport=udp>;tag=9fx', "sip:owner@pbx.example.org"),
    ("Owner <sip:owner@pbx.example.org>", "sip:owner@pbx.example.org"),
    ("<sips:owner@[::1]:5061>", "sips:owner@[::1]"),
    ("sip:pbx.example.org", "sip:pbx.example.org"),
]


@pytest.mark.parametrize(("text", "aor"), AORS)
def test_address_of_record_normalizes_for_comparison(text: str, aor: str) -> None:
    assert address_of_record(text) == aor


@pytest.mark.parametrize("text", ["owner@pbx.example.org", "sip:owner@pbx.example.org:99999"])
def test_address_of_record_rejects_non_sip_text(text: str) -> None:
    with pytest.raises(InvalidSipUri, match="not a SIP URI"):
        address_of_record(text)


@given(st.text(alphabet=st.sampled_from('sip:s@<>"; =?%[]0123456789.abAB-_\\ \t'), max_size=40))
def test_any_text_parses_or_is_rejected_and_parsed_uris_round_trip(text: str) -> None:
    try:
        uri = parse_sip_uri(text)
    except InvalidSipUri:
        return
    assert parse_sip_uri(str(uri)) == uri
    assert address_of_record(str(uri)) == address_of_record(text)


# Edges the tables above leave open, each with its exact outcome.
EDGES = [
    ('"" <sip:a@b>', "sip:a@b"),  # an empty display name
    ('"A"<sip:a@b>', "sip:a@b"),  # no space before '<'
    ('"\\\\" <sip:a@b>', "sip:a@b"),  # an escaped backslash, then the closing quote
    ("Xavier <sip:a@b>", "sip:a@b"),
    ('<sip:a@b>;note=">"', "sip:a@b"),  # '>' in a header parameter after the URI
    ("sip:a@example.org.", "sip:a@example.org."),  # a fully qualified name
    ("sip:a@1.2.3", "sip:a@1.2.3"),  # digits, but not four labels: a name, not an address
    ("sip:a@b:1", "sip:a@b:1"),
    ("sip:a@b:65535", "sip:a@b:65535"),
    ("a<b <sip:x@y>", "not a SIP URI: 'a<b <sip:x@y>' (contains whitespace)"),
    ('a<"b" <sip:x@y>', "not a SIP URI: 'a<\"b\" <sip:x@y>' (contains whitespace)"),
    ("sip:a@b@c", "not a SIP URI: 'sip:a@b@c' (bad host 'b@c')"),
    ("sip:[::1]:50]", "not a SIP URI: 'sip:[::1]:50]' (bad port '50]')"),
    ("sip:[zz]:5060", "not a SIP URI: 'sip:[zz]:5060' (bad IPv6 address '[zz]')"),
    ("sip:a@b:0", "not a SIP URI: 'sip:a@b:0' (bad port '0')"),
    ("sip:a@b:65536", "not a SIP URI: 'sip:a@b:65536' (bad port '65536')"),
    ("sip:a@999.1.1.1", "not a SIP URI: 'sip:a@999.1.1.1' (bad IPv4 address '999.1.1.1')"),
]


@pytest.mark.parametrize(("text", "outcome"), EDGES)
def test_edges_of_the_grammar(text: str, outcome: str) -> None:
    try:
        parsed = str(parse_sip_uri(text))
    except InvalidSipUri as err:
        parsed = str(err)
    assert parsed == outcome
