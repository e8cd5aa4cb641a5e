"""The registration schedule: backoff with jitter, checks, link changes, the public address."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    assert k.due(10.0**9) is None


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
    assert k.due(0.999) is None
    assert k.due(1.0) is Action.CHECK


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
