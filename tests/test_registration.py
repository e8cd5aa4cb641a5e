"""The registration schedule: backoff with jitter, checks, link changes, the public address."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.adapters.sip import net as sipnet
from agent.adapters.sip.netwatch import RouteWatch
from agent.config.load import parse_config
from agent.core.registration import Action, Backoff, Keeper, RegState, public_address


@pytest.mark.parametrize(
    ("failures", "rand", "delay"),
    [(1, 0.0, 2.0), (2, 0.0, 4.0), (3, 0.0, 8.0), (6, 0.0, 60.0), (50, 0.0, 60.0), (1, 0.5, 1.5)],
)
def test_backoff_doubles_up_to_its_bound(failures: int, rand: float, delay: float) -> None:
    assert Backoff(2, 60).delay(failures, rand) == pytest.approx(delay)


@given(st.integers(1, 10_000), st.floats(0, 1, exclude_max=True))
def test_backoff_never_exceeds_the_bound_nor_drops_below_half(failures: int, rand: float) -> None:
    delay = Backoff(2, 60).delay(failures, rand)
    base = min(60, 2 * 2 ** (failures - 1))
    assert base / 2 <= delay <= base <= 60


def _keeper(check_s: float = 60, rand: float = 0.0) -> Keeper:
    return Keeper(Backoff(2, 60), check_s, rand=lambda: rand)


def test_a_failure_schedules_a_register_after_the_backoff() -> None:
    k = _keeper()
    k.started()
    attempt = k.failed(100.0, "408 Request Timeout")
    assert (attempt.failures, attempt.delay_s) == (1, 2.0)
    assert k.due(101.9) is None
    assert k.due(102.0) is Action.REGISTER
    assert k.due(102.1) is None  # handed out once
    k.started()
    assert k.failed(103.0, "408").delay_s == 4.0


def test_success_resets_the_backoff_and_schedules_the_periodic_check() -> None:
    k = _keeper(check_s=30)
    k.failed(0.0, "503")
    k.failed(2.0, "503")
    assert k.registered(10.0, "198.51.100.2:4000") is None
    assert k.failures == 0
    assert k.due(39.9) is None
    assert k.due(40.0) is Action.CHECK
    assert k.failed(41.0, "408").delay_s == 2.0


def test_no_periodic_check_when_turned_off() -> None:
    k = _keeper(check_s=0)
    k.registered(0.0, None)
    assert k.next_due() is None


def test_a_check_waits_while_a_register_is_in_flight() -> None:
    k = _keeper(check_s=5)
    k.registered(0.0, None)
    k.started()  # pjsua refreshing by itself
    assert k.due(6.0) is None
    k.registered(7.0, None)
    assert k.due(12.0) is Action.CHECK


def test_a_new_public_address_is_noted() -> None:
    k = _keeper()
    k.registered(0.0, "198.51.100.2:4000")
    note = k.registered(60.0, "198.51.100.2:5000")
    assert note == "the server now sees us at 198.51.100.2:5000 (was 198.51.100.2:4000)"
    assert k.public == "198.51.100.2:5000"


def test_a_link_change_registers_at_once_and_forgets_old_failures() -> None:
    k = _keeper()
    k.registered(0.0, "198.51.100.2:4000")
    k.failed(10.0, "408")
    k.failed(20.0, "408")
    attempt = k.link_changed(21.0, "local address changed")
    assert (attempt.failures, attempt.delay_s) == (0, 0.0)
    assert k.public is None
    assert k.due(21.0) is Action.REGISTER


def test_a_retry_is_pending_only_after_a_failure_or_link_change() -> None:
    k = _keeper(check_s=5)
    k.registered(0.0, None)
    assert not k.retry_pending()  # only the periodic check is scheduled
    k.failed(1.0, "503")
    assert k.retry_pending()


def test_registration_payload_carries_the_public_address_and_the_retry() -> None:
    ok = RegState("registered", 200, "OK", 300, public="198.51.100.2:4000")
    assert ok.as_dict() == {
        "state": "registered", "code": 200, "reason": "OK", "expires": 300,
        "public": "198.51.100.2:4000",
    }  # fmt: skip
    failed = RegState("failed", 408, "Request Timeout", 0, retry_in_s=3.94, attempt=2)
    assert failed.as_dict()["retry_in"] == 3.9
    assert failed.as_dict()["attempt"] == 2
    assert "public" not in failed.as_dict()


def test_unregistering_cancels_what_was_scheduled() -> None:
    k = _keeper()
    k.failed(0.0, "408")
    k.unregistered()
    assert k.due(1000.0) is None


RESPONSE = (
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 192.0.2.10:5060;rport=40123;branch=z9hG4bK1;received=198.51.100.2\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK2\r\n"
    "Contact: <sip:agent@192.0.2.10:5060>;expires=300\r\n\r\n"
)


@pytest.mark.parametrize(
    ("response", "public"),
    [
        (RESPONSE, "198.51.100.2:40123"),
        ("SIP/2.0 200 OK\r\nv: SIP/2.0/TCP 192.0.2.10:5070;branch=z\r\n\r\n", "192.0.2.10:5070"),
        ("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10;rport=7;branch=z\r\n\r\n", "192.0.2.10:7"),
        ("SIP/2.0 200 OK\r\nVIA: SIP/2.0/UDP a, SIP/2.0/UDP b\r\n\r\n", "a:5060"),
        ("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP [2001:db8::1]:5060;received=2001:db8::2\r\n",
         "[2001:db8::2]:5060"),
        ("SIP/2.0 200 OK\r\nTo: <sip:a@b>\r\n\r\n", None),
    ],
)  # fmt: skip
def test_public_address_comes_from_received_and_rport(response: str, public: str | None) -> None:
    assert public_address(response) == public


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


def test_route_watch_names_the_local_source_address() -> None:
    watch = RouteWatch("127.0.0.1", 5060)
    assert watch.changed(0.0) == (None, "127.0.0.1")
    assert watch.changed(1.0) is None


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
        due = recovery.keeper.next_due()
        assert due is not None
        assert before + state.retry_in_s <= due <= after + state.retry_in_s
        recovery.tick(due - 0.01, account)
        assert account.registers == failures - 1, "a REGISTER before its delay had passed"
        recovery.tick(due, account)
        assert account.registers == failures, "no REGISTER once its delay had passed"
    # A success starts the schedule over.
    recovery.on_result(RegState("registered", 200, "OK", 300), "")
    state = recovery.on_result(RegState("failed", 408, "Request Timeout", 0), "")
    assert (state.attempt, retry_min / 2 <= (state.retry_in_s or 0) <= retry_min) == (1, True)


@pytest.mark.parametrize(
    ("code", "expires", "unregistering", "state"),
    [
        (200, 300, False, RegState("registered", 200, "why", 300)),
        (299, 1, False, RegState("registered", 299, "why", 1)),
        (200, 0, False, RegState("unregistered", 200, "why", 0)),
        (200, 300, True, RegState("unregistered", 200, "why", 0)),
        (300, 300, False, RegState("failed", 300, "why", 0)),
        (408, 300, False, RegState("failed", 408, "why", 0)),
    ],
)
def test_a_register_outcome_maps_to_exactly_one_state(
    code: int, expires: int, unregistering: bool, state: RegState
) -> None:
    from agent.core.registration import reg_state_of

    assert reg_state_of(code, "why", expires, unregistering=unregistering) == state


def test_a_link_change_starts_the_backoff_over() -> None:
    k = _keeper()
    k.failed(0.0, "408")
    k.failed(1.0, "408")
    k.link_changed(2.0, "network back")
    assert k.failures == 0
    assert k.failed(3.0, "408").delay_s == 2.0  # the first step again


def test_a_one_second_check_is_a_check() -> None:
    k = _keeper(check_s=1)
    k.registered(0.0, None)
    assert k.next_due() == 1.0


@pytest.mark.parametrize(
    ("via", "public"),
    [
        ("Via: SIP / 2.0 / UDP 192.0.2.10:5070;branch=z", "192.0.2.10:5070"),  # LWS around '/'
        ("Via: SIP/2.0/UDP [2001:db8::1]:5062;branch=z", "[2001:db8::1]:5062"),
        ("Via: SIP/2.0/UDP [2001:db8::1];rport=7;branch=z", "[2001:db8::1]:7"),
        ("Via: ;received=192.0.2.9;rport=9", "192.0.2.9:9"),  # no sent-by: what it says
        ("Via: ;rport=5", None),  # no host anywhere
    ],
)
def test_public_address_from_odd_but_valid_vias(via: str, public: str | None) -> None:
    assert public_address(f"SIP/2.0 200 OK\r\n{via}\r\n\r\n") == public


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
