"""Several SIP accounts seen as one device: its registration as a whole, and in words. Pure.

The device is registered when **any** of its accounts is. That is what `READY=1`, the
watchdog's health and `B/message/send`'s wait go by. Why not "all": a device with a PBX
extension and a public number must open the gate from the PBX while the provider is down,
and a watchdog restart cannot mend a provider's outage, it would only cut the PBX side off
too. Why not "the first": the same holds the other way round. Each account's own state is
on `B/registration/<name>`, in `STATUS=` and in `status`; `B/registration` stays the first
account's (what a single-account device has always published).
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.config.model import Config
from agent.core.registration import RegState
from agent.core.sipuri import InvalidSipUri, parse_sip_uri

_WORKING = ("registered", "direct")


def overall(states: Mapping[str, RegState]) -> RegState:
    """The device's registration: the first account's while it works, else the first
    working one's, else the first account's (failed, registering, ...)."""
    ordered = list(states.values())
    return next((s for s in ordered if s.state in _WORKING), ordered[0])


def summary(states: Mapping[str, RegState]) -> str:
    """`registered as 203.0.113.7:40123`; with several accounts each one by name:
    `main registered; public failed (403 Forbidden), retry 2 in 8s`."""
    if len(states) == 1:
        return _words(next(iter(states.values())))
    return "; ".join(f"{name} {_words(state)}" for name, state in states.items())


def misrouted(config: Config, account: str, sender: str) -> str | None:
    """Why a request from `sender` cannot be what it says, having come in on `account`, or
    None. A user of one account's domain reaches the agent through that account's proxy:
    the same From through another account's proxy (a public provider relaying whatever a
    stranger writes) is not vouched for by anyone, so it is never obeyed."""
    if len(config.accounts) < 2:
        return None
    try:
        host = parse_sip_uri(sender).host.lower()
    except InvalidSipUri:
        return None
    own = {a.name: parse_sip_uri(a.uri).host.lower() for a in config.accounts}
    if host == own.get(account) or host not in own.values():
        return None
    return f"a From of another account's domain ({host}) came in through account {account!r}"


def uri_of(config: Config, name: str) -> str:
    """The identity of account `name` (its name if there is no such account)."""
    return next((a.uri for a in config.accounts if a.name == name), name)


def _words(reg: RegState) -> str:
    text = reg.state + (f" as {reg.public}" if reg.public else "")
    text += f" via {reg.server}" if reg.server else ""  # the SRV target in use
    if reg.code or reg.state in ("registering", "failed"):
        text += f" ({reg.code} {reg.reason})" if reg.code else f" ({reg.reason})"
    if reg.retry_in_s is not None:
        text += f", retry {reg.attempt} in {reg.retry_in_s:.0f}s"
    return text
