"""Who may give commands. Pure: the caller passes a normalized sender identity."""

from __future__ import annotations

from dataclasses import dataclass

from agent.sipuri import InvalidSipUri, address_of_record


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def identity_of(sender: str) -> str:
    """The comparable identity of a sender: a SIP address of record, or the text as given."""
    try:
        return address_of_record(sender)
    except InvalidSipUri:
        return sender.strip()


def authorize(sender: str, allow: tuple[str, ...]) -> Decision:
    """Decide whether `sender` may command the device, given the normalized allow list."""
    who = identity_of(sender)
    if who in allow:
        return Decision(True, f"{who} is in access.allow")
    return Decision(False, f"{who} is not in access.allow")
