"""Who may do what. Pure: identities come normalized, one-time codes are checked by a callable."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from agent.config.model import AccessConfig, SipConfig, UserRights
from agent.core.commands import Command
from agent.core.durations import format_minutes
from agent.core.record import record
from agent.core.sipuri import InvalidSipUri, address_of_record

if TYPE_CHECKING:  # agent.core.codes loads only where a user has a secret (dispatch)
    from agent.core.codes import CodeResult

# (identity, key, code) -> what became of the code (agent.core.codes; accepted: it is now spent)
CodeCheck = Callable[[str, bytes, str], "CodeResult"]


@record
class Decision:
    """Whether a sender may run a command, and why (for the log and the reply)."""

    allowed: bool
    reason: str  # for the log: who and why
    known: bool = True  # False: a stranger, answered `forbidden` or not at all
    reply: str = "forbidden"  # what a refused sender is told after `error: `


def senders_authenticated(sip: SipConfig) -> bool:
    """Does someone vouch for the From of a SIP request that reaches the agent?

    Routed (a registrar or proxy): the proxy authenticates its users, and requests that
    did not come through it are the SIP adapter's to refuse. Direct mode: nobody does, and
    neither in routed mode with `sip.accept_from = "anyone"` (requests straight to the port).
    """
    return sip.routed and sip.accept_from == "proxy"


def identity_of(sender: str) -> str:
    """The comparable identity of a sender: a SIP address of record, or the text as given."""
    try:
        return address_of_record(sender)
    except InvalidSipUri:
        return sender.strip()


def may_use(rights: UserRights) -> list[str] | None:
    """The command names a user may use (None: all)."""
    return None if rights.commands is None else ["help", *rights.commands]


def decide(
    identity: str,
    command: Command,
    code: str | None,
    access: AccessConfig,
    outputs: Collection[str],
    check_code: CodeCheck,
) -> Decision:
    """May `identity` run `command` (with the one-time `code` it wrote before it, if any)?

    A code is checked (and so spent) only when everything else allows the command.
    """
    rights = access.rights_of(identity)
    if rights is None:
        return Decision(False, f"{identity} is not in access.allow or access.users", known=False)
    name, target = command.name, command.target
    if rights.commands is not None and name != "help" and name not in rights.commands:
        usable = ", ".join(may_use(rights) or ())
        return Decision(
            False,
            f"{identity} may not use '{name}'",
            reply=f"'{name}' is not allowed for you (you may use: {usable})",
        )
    if not command.takes_output or target not in outputs:
        return Decision(True, f"{identity} may use '{name}'")  # unknown outputs: execute says so
    if rights.outputs is not None and target not in rights.outputs:
        mine = ", ".join(rights.outputs) or "none"
        return Decision(
            False,
            f"{identity} may not use output {target}",
            reply=f"output '{target}' is not allowed for you (your outputs: {mine})",
        )
    if target not in access.require_code:
        return Decision(True, f"{identity} may use {target}")
    if rights.totp_secret is None:
        return Decision(
            False,
            f"{identity} has no totp secret for {target}",
            reply=f"'{target}' needs a one-time code, and none is set up for you",
        )
    if code is None:
        return Decision(
            False,
            f"{identity} sent no one-time code for {target}",
            reply=f"'{target}' needs a one-time code: send '<code> {command.text}'",
        )
    result = check_code(identity, rights.totp_secret, code)
    from agent.core.codes import Verdict  # loaded already: check_code made the result

    if result.verdict is Verdict.LOCKED:
        wait = format_minutes(result.locked_for_s)
        return Decision(
            False,
            f"{identity}'s one-time codes are locked for {wait} after wrong codes",
            reply=f"one-time codes are locked for {wait} after repeated wrong codes",
        )
    if result.verdict is Verdict.UNRECORDED:
        return Decision(
            False,
            f"{identity} sent a valid one-time code for {target}, but its use cannot be "
            "recorded (state directory): refused",
            reply="one-time code refused: its use cannot be recorded; try again later",
        )
    if result.verdict is not Verdict.ACCEPTED:
        return Decision(
            False,
            f"{identity} sent a bad or used one-time code for {target} "
            f"({result.failures} wrong in a row)",
            reply="one-time code not accepted (wrong, expired or already used)",
        )
    return Decision(True, f"{identity} may use {target} with a valid one-time code")
