"""Reading `[[sip.accounts]]`: more SIP accounts beside the one in `[sip]`.

A device with a PBX extension and a public number registers both. `[sip]` stays the first
account (and alone it is all a single-account config needs); each `[[sip.accounts]]` entry
is one more, with its own identity, registrar, credentials, transport and listen address.
What the agent does with requests, whoever they came through, is one policy for every
account and stays in `[sip]`: presence, `accept_from`, `trusted`, `[sip.limits]`,
`[sip.recovery]`, the User-Agent and pjsip's resolver (`nameservers`: one per endpoint).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from agent.config.model import SipConfig
from agent.config.table import NAME, Table, default_of

# Keys of [sip] that hold for every account: an account entry may not set them.
SHARED_KEYS = (
    "presence", "accept_from", "trusted", "limits", "recovery", "user_agent", "nameservers"
)  # fmt: skip
DEFAULT_NAME: str = default_of(SipConfig, "name")
MAX_ACCOUNTS = 4  # pjsua's default PJSUA_MAX_ACC is 8; a device needs two, rarely three

ReadSip = Callable[[Table], SipConfig]


def account_name(t: Table, default: str | None) -> str:
    """`name` of an account: [a-z0-9_-]+ (topics, Home Assistant ids, `"account"`)."""
    name = t.text("name", default, required=default is None)
    if name is not None and not NAME.fullmatch(name):
        t.problem("name", f"{name!r} must match [a-z0-9_-]+")
        return default or "account"
    return name or default or "account"


def read_more_accounts(sip_table: Table, first: SipConfig, read: ReadSip) -> tuple[SipConfig, ...]:
    """Every `[[sip.accounts]]` entry, each read like `[sip]` by `read`, sharing the first
    account's policy; problems in `sip_table.problems`."""
    entries = sip_table.value("accounts", "array of tables", (list,))
    if not entries:
        return ()
    where = sip_table.where("accounts")
    if len(entries) + 1 > MAX_ACCOUNTS:
        sip_table.problem("accounts", f"at most {MAX_ACCOUNTS} accounts in all")
        entries = entries[: MAX_ACCOUNTS - 1]
    if first.registrar is None:
        sip_table.problem("registrar", "several accounts need a registrar each")
    accounts: list[SipConfig] = []
    for i, raw in enumerate(entries):
        t = Table(sip_table.problems, f"{where}[{i}]", raw if isinstance(raw, dict) else {})
        if not isinstance(raw, dict):
            t.problems.append(f"{where}[{i}]: table expected")
            continue
        for key in SHARED_KEYS:
            if key in raw:
                t.problem(key, "is the same for every account: set it in [sip]")
        own = {k: v for k, v in raw.items() if k not in SHARED_KEYS}
        # Beside the first account's port: any free one unless it says which.
        account = read(Table(t.problems, t.path, {"listen": "0.0.0.0:0", **own}))
        if account.registrar is None:
            t.problem("registrar", "required key is missing (every extra account registers)")
        accounts.append(
            dataclasses.replace(
                account, **{k: getattr(first, k) for k in _SHARED_FIELDS}, presence="off"
            )
        )
    _check_distinct(sip_table, first, accounts)
    return tuple(accounts)


_SHARED_FIELDS = ("accept_from", "trusted", "limits", "recovery", "user_agent", "nameservers")


def _check_distinct(t: Table, first: SipConfig, more: list[SipConfig]) -> None:
    seen_names = {first.name}
    seen_listen = {(first.transport, first.listen_host, first.listen_port)}
    for i, account in enumerate(more):
        where = f"{t.where('accounts')}[{i}]"
        if account.name in seen_names:
            t.problems.append(f"{where}.name: {account.name!r} is already another account's")
        seen_names.add(account.name)
        listen = (account.transport, account.listen_host, account.listen_port)
        if account.listen_port and listen in seen_listen:
            t.problems.append(
                f"{where}.listen: {account.listen_host}:{account.listen_port} "
                f"({account.transport}) is already another account's"
            )
        seen_listen.add(listen)
