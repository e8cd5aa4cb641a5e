"""Presence notes: one rule on every path, and PIDF that stays well-formed for any note."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config.load import parse_config
from agent.config.model import ConfigError
from agent.core.events import MqttMessage
from agent.core.presence import (
    MAX_NOTE_CHARS,
    PresenceError,
    check_note,
    from_xml_text,
    parse_request,
    xml_text,
)
from lab.rigs import AgentRig

CRAFTED = 'Tom & Jerry </note></tuple><tuple id="x"><status><basic>open</basic></status><note>'


@pytest.mark.parametrize(
    ("note", "kept"),
    [
        ("door open", "door open"),
        ("  Tom   &  Jerry ", "Tom & Jerry"),
        ("line one\nline two\ttab", "line one line two tab"),
        (CRAFTED, CRAFTED),
        ("Müller's <b>café</b> 🚪", "Müller's <b>café</b> 🚪"),
        ("x" * MAX_NOTE_CHARS, "x" * MAX_NOTE_CHARS),
    ],
)
def test_a_note_is_kept_as_one_line(note: str, kept: str) -> None:
    assert check_note(note) == kept


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        ("bell\x07", "the note contains a control character (U+0007)"),
        ("nul\x00", "control character (U+0000)"),
        ("evil\u202egnp.exe", "control character (U+202E)"),  # right-to-left override
        ("esc\x1b[31m", "control character (U+001B)"),
        ("not \ufffd utf-8", "the note is not UTF-8 text"),
        ("half \ud800", "the note is not UTF-8 text"),
        ("no \uffff", "control character (U+FFFF)"),
        ("x" * (MAX_NOTE_CHARS + 1), f"note longer than {MAX_NOTE_CHARS} characters"),
    ],
)
def test_a_note_with_a_control_character_is_refused(note: str, reason: str) -> None:
    with pytest.raises(PresenceError, match=re.escape(reason)):
        check_note(note)


@pytest.mark.parametrize(
    "payload",
    [
        "busy bell\x07",
        '{"status": "busy", "note": "bell\\u0007"}',
        '{"status": "busy", "note": "evil\\u202egnp"}',
    ],
)
def test_presence_set_refuses_what_the_sip_path_refuses(payload: str) -> None:
    with pytest.raises(PresenceError, match="control character"):
        parse_request(payload)


def test_one_rule_for_notes_on_every_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    rig = AgentRig()
    owner = "sip:owner@127.0.0.1"
    before = list(rig.sip.sent)
    # SIP, text: the body itself holds the control character.
    text = rig.agent.dispatcher.handle(owner, "presence busy bell\x07", "text/plain")
    assert text.reply == "error: the message contains a control character (U+0007)"
    # SIP, JSON: the escape hides it from the body check; the note check finds it.
    body = '{"command": "presence", "status": "busy", "note": "bell\\u0007"}'
    json_body = rig.agent.dispatcher.handle(owner, body, "application/json")
    assert json_body.reply == "error: the note contains a control character (U+0007)"
    # MQTT, text and JSON.
    for payload in (b"busy bell\x07", b'{"status": "busy", "note": "bell\\u0007"}'):
        rig.agent.handle(MqttMessage("sipagent/porch/presence/set", payload))
    assert rig.sip.sent == before  # nothing reached SIP presence
    # The same note without it is taken, and white space means the same on every path.
    ok = rig.agent.dispatcher.handle(owner, "presence busy Tom  &\tJerry", "text/plain")
    assert ok.reply == "ok: presence busy — Tom & Jerry"
    rig.agent.handle(MqttMessage("sipagent/porch/presence/set", b"away Tom  &\tJerry"))
    assert rig.sip.sent[-1].note == "Tom & Jerry"


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ('[presence]\nnote = "door\\u0007"', "presence.note: the note contains a control"),
        ('[presence]\nnote = "a\\nb"', "presence.note: the note contains a control"),
        ('[presence]\nnote = "' + "x" * 201 + '"', "presence.note: note longer than 200"),
        (
            '[gpio.inputs.door]\npin = 27\nactive_text = "op\\u202een"',
            "gpio.inputs.door.active_text: the note contains a control character (U+202E)",
        ),
        (
            '[gpio.inputs.door]\npin = 27\n[gpio.inputs.door.when_active]\nnote = "x\\ty"',
            "gpio.inputs.door.when_active.note: the note contains a control character (U+0009)",
        ),
    ],
)
def test_notes_in_the_config_follow_the_same_rule(toml: str, problem: str) -> None:
    base = '[device]\nid = "p"\n[sip]\nuri = "sip:p@127.0.0.1"\n[gpio]\npin_factory = "mock"\n'
    with pytest.raises(ConfigError) as err:
        parse_config(base + toml)
    assert any(p.startswith(problem) for p in err.value.problems), err.value.problems


NOTES = st.text(
    st.characters(
        blacklist_categories=("Cc", "Cf", "Cs"), blacklist_characters="\ufffd\ufffe\uffff"
    ),
    max_size=MAX_NOTE_CHARS,
).map(lambda n: " ".join(n.split()))


@settings(max_examples=300, deadline=None)
@given(NOTES)
def test_any_valid_note_makes_well_formed_pidf_that_reads_back_the_same(note: str) -> None:
    # The shape pjsua prints (pjsip_pres_create_pidf): one tuple, the note in it and in RPID.
    pidf = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:porch@127.0.0.1">'
        f'<tuple id="t1"><status><basic>open</basic></status><note>{xml_text(note)}</note></tuple>'
        f"<note>{xml_text(note)}</note></presence>"
    )
    root = ET.fromstring(pidf.encode())
    ns = "{urn:ietf:params:xml:ns:pidf}"
    assert len(root.findall(f"{ns}tuple")) == 1
    assert (root.find(f"{ns}tuple/{ns}note").text or "") == note
    assert (root.find(f"{ns}note").text or "") == note
    assert from_xml_text(xml_text(note)) == note  # what the agent reads back from pjsua


@pytest.mark.parametrize(
    ("xml", "text"),
    [
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("&lt;b&gt; &quot;x&quot; &apos;y&apos;", "<b> \"x\" 'y'"),
        ("caf&#233; &#xE9; &#XE9;", "café é é"),
        ("&amp;amp; &unknown; &#0; &#xD800; & alone", "&amp; &unknown; &#0; &#xD800; & alone"),
    ],
)
def test_notes_from_contacts_are_decoded_as_an_xml_parser_would(xml: str, text: str) -> None:
    assert from_xml_text(xml) == text
