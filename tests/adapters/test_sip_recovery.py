"""The SIP adapter's side of registration (agent.adapters.sip.net, .netwatch): TLS refusals in
words, the local route, and the recovery schedule driving REGISTERs."""

from __future__ import annotations

import time

import pytest

from agent.adapters.sip import net as sipnet
from agent.adapters.sip.netwatch import RouteWatch
from agent.config.load import parse_config
from agent.core.registration import RegState

# -- the adapter's schedule, from the config to the REGISTER -------------------------------

RECOVERY_CONFIG = """
[device]
id = "t"
[sip]
uri = "sip:t@127.0.0.1"
registrar = "sip:127.0.0.1:5060"
password = "pw"
[sip.recovery]
check_s = 0
retry_min_s = {retry_min}
retry_max_s = {retry_max}
"""


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (sipnet.pj.PJ_SSL_CERT_EISSUER_NOT_FOUND, "unknown CA"),
        (sipnet.pj.PJ_SSL_CERT_EVALIDITY_PERIOD, "expired"),
        (sipnet.pj.PJ_SSL_CERT_EIDENTITY_NOT_MATCH, "wrong host"),
    ],
)
def test_tls_refusals_say_why(status: int, reason: str) -> None:
    assert reason in sipnet.tls_refusal_reason(status, ["openssl says so"])


def test_an_unknown_tls_refusal_keeps_pjsips_words() -> None:
    assert (
        sipnet.tls_refusal_reason(sipnet.pj.PJ_SSL_CERT_ECRL_FAILURE, ["odd failure"])
        == "odd failure"
    )


@pytest.mark.parametrize(
    ("registrar", "proxy", "hop"),
    [
        ("sip:pbx.example.org", None, ("pbx.example.org", True)),  # SRV (RFC 3263 4.2)
        ("sip:pbx.example.org:5070", None, ("pbx.example.org", False)),  # a port: A/AAAA
        ("sip:pbx.example.org;maddr=192.0.2.9", None, ("pbx.example.org", False)),
        ("sip:127.0.0.1", None, None),  # an address: nothing to look up
        ("sip:[2001:db8::1]", None, None),
        ("sip:pbx.example.org", "sip:192.0.2.7;lr", None),  # the proxy is the next hop
        ("sip:192.0.2.7", "sip:edge.example.org;lr", ("edge.example.org", True)),
    ],
)
def test_the_next_hop_is_looked_up_only_when_it_is_a_name(
    registrar: str, proxy: str | None, hop: tuple[str, bool] | None
) -> None:
    text = f'[device]\nid = "t"\n[sip]\nuri = "sip:t@example.org"\nregistrar = "{registrar}"\n'
    if proxy:
        text += f'proxy = "{proxy}"\n'
    assert sipnet.hop_host(parse_config(text).sip) == hop


def test_route_watch_names_the_local_source_address() -> None:
    watch = RouteWatch("127.0.0.1", 5060)
    assert watch.changed(0.0) == (None, "127.0.0.1")
    assert watch.changed(1.0) is None


class FakeAccount:
    def __init__(self) -> None:
        self.registers = 0

    def setRegistration(self, renew: bool) -> None:
        self.registers += 1


@pytest.mark.parametrize(("retry_min", "retry_max"), [(1, 8), (3, 20)])
def test_recovery_retries_after_delays_that_double_from_the_configured_minimum_to_its_bound(
    retry_min: int, retry_max: int
) -> None:
    """sipnet.Recovery as the SIP adapter drives it: each failure reports a delay, and the
    REGISTER goes out when that delay has passed on the clock the test hands to `tick`."""
    config = parse_config(RECOVERY_CONFIG.format(retry_min=retry_min, retry_max=retry_max))
    recovery = sipnet.Recovery(config.sip, lambda state: None)
    account = FakeAccount()
    for failures in range(1, 9):
        before = time.monotonic()
        state = recovery.on_result(RegState("failed", 503, "Service Unavailable", 0), "")
        after = time.monotonic()
        # The oracle: the documented schedule, from the configured values alone.
        base = min(retry_max, retry_min * 2 ** (failures - 1))
        assert state.attempt == failures
        assert state.retry_in_s is not None
        assert base / 2 <= state.retry_in_s <= base, (failures, state.retry_in_s, base)
        # The REGISTER is due `retry_in_s` after the failure, which came between the readings.
        recovery.tick(before + state.retry_in_s - 0.01, account)
        assert account.registers == failures - 1, "a REGISTER before its delay had passed"
        recovery.tick(after + state.retry_in_s, account)
        assert account.registers == failures, "no REGISTER once its delay had passed"
    # A success starts the schedule over.
    recovery.on_result(RegState("registered", 200, "OK", 300), "")
    state = recovery.on_result(RegState("failed", 408, "Request Timeout", 0), "")
    assert (state.attempt, retry_min / 2 <= (state.retry_in_s or 0) <= retry_min) == (1, True)


class FakeRoute:
    def __init__(self) -> None:
        self.next: tuple[str | None, str | None] | None = None

    def changed(self, now: float) -> tuple[str | None, str | None] | None:
        change, self.next = self.next, None
        return change


def test_recovery_reports_a_lost_connection_and_route_changes_with_their_reasons() -> None:
    config = parse_config(RECOVERY_CONFIG.format(retry_min=1, retry_max=8))
    reports: list[RegState] = []
    recovery = sipnet.Recovery(config.sip, reports.append)
    route = FakeRoute()
    recovery._route = route  # type: ignore[assignment]
    account = FakeAccount()
    recovery.keeper.started()
    recovery.on_result(RegState("registered", 200, "OK", 300), "")
    now = time.monotonic()
    recovery.connection_lost(now)
    lost = reports[-1]
    assert (lost.state, lost.reason, lost.attempt) == (
        "failed",
        "connection to the server closed",
        1,
    )
    assert lost.retry_in_s is not None and 0.5 <= lost.retry_in_s <= 1
    recovery.connection_lost(now)  # a retry is already scheduled: nothing more
    assert len(reports) == 1
    route.next = ("192.0.2.10", None)
    recovery.tick(now + 0.1, account)
    assert reports[-1] == RegState("failed", 0, "network down: no route to the registrar", 0)
    assert account.registers == 0
    route.next = (None, "192.0.2.10")
    recovery.tick(now + 2.2, account)
    # At once, not after a backoff: reported, then sent in the same turn.
    assert reports[-1] == RegState("registering", 0, "network back", 0)
    assert account.registers == 1
    recovery.on_result(RegState("failed", 408, "Request Timeout", 0), "")
    route.next = ("192.0.2.10", "192.0.2.23")
    recovery.tick(now + 4.4, account)
    assert reports[-1] == RegState(
        "registering", 0, "local address changed from 192.0.2.10 to 192.0.2.23", 0
    )
    assert account.registers == 2
