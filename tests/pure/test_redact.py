"""One-time codes kept out of the logs (agent.core.redact), as its docstring promises: runs of
4 to 8 digits standing alone, `123 456` and `123-456`, a JSON "code" field's value, and in a
pjsip message dump only the body.
"""

from __future__ import annotations

import pytest

from agent.core.redact import MASK, redact_codes, redact_sip_dump


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("123456 pulse gate", f"{MASK} pulse gate"),
        ("code 1234 and 12345678", f"code {MASK} and {MASK}"),
        ("123 456 pulse gate", f"{MASK} pulse gate"),
        ("123-456 pulse gate", f"{MASK} pulse gate"),
        ("pulse gate 2s", "pulse gate 2s"),  # a duration is no code
        ("123", "123"),  # too short
        ("123456789", "123456789"),  # too long
        ("abc123456", "abc123456"),  # not standing alone
        ("123456abc", "123456abc"),
        ("+123456", "+123456"),  # part of a phone number
        ('{"command": "on gate", "code": "987654"}', f'{{"command": "on gate", "code": "{MASK}"}}'),
        ('{"CODE": 987654}', f'{{"CODE": "{MASK}"}}'),
        ('{"code": "12 34 5\\"6"}', f'{{"code": "{MASK}"}}'),
    ],
)
def test_redact_codes(text: str, redacted: str) -> None:
    assert redact_codes(text) == redacted


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
def test_only_the_body_of_a_sip_dump_is_redacted(eol: str) -> None:
    head = f"RX 512 bytes Request msg MESSAGE/cseq=123456 from UDP 192.0.2.7:5060:{eol}"
    head += f"MESSAGE sip:porch@192.0.2.1 SIP/2.0{eol}CSeq: 123456 MESSAGE"
    dump = f"{head}{eol}{eol}654321 pulse gate{eol}--end msg--{eol}after 111111"
    assert redact_sip_dump(dump) == (
        f"{head}{eol}{eol}{MASK} pulse gate{eol}--end msg--{eol}after 111111"
    )


def test_a_dump_without_a_body_is_left_alone() -> None:
    assert redact_sip_dump("TX 123456 bytes, no blank line") == "TX 123456 bytes, no blank line"


def test_a_body_with_a_blank_line_in_it_is_redacted_whole() -> None:
    dump = "MESSAGE sip:a@b SIP/2.0\n\n123456 first\n\n654321 second\n--end msg--"
    assert redact_sip_dump(dump) == (
        f"MESSAGE sip:a@b SIP/2.0\n\n{MASK} first\n\n{MASK} second\n--end msg--"
    )
