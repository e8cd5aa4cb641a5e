"""MQTT -> SIP sends: waiting for registration, retries, one report per request."""

from __future__ import annotations

from agent.core.outgoing import Outgoing, Request
from lab.fakes import Clock


def _outgoing(retries: int = 2, timeout_s: float = 30.0, refuse: str | None = None):  # type: ignore[no-untyped-def]
    clock, sent, reports = Clock(), [], []

    def send(request: Request) -> None:
        if refuse:
            raise ValueError(refuse)
        sent.append(request.token)

    out = Outgoing(send, reports.append, timeout_s=timeout_s, retries=retries, clock=clock)
    return out, clock, sent, reports


def test_a_send_waits_for_registration_then_goes() -> None:
    out, clock, sent, reports = _outgoing()
    out.submit("a", "sip:bob@x", "hi")
    clock.now = 10
    out.tick()
    assert sent == []
    out.set_ready(True)
    assert sent == ["a"]
    assert out.on_status("a", 200, "OK")
    assert reports == [
        {"id": "a", "to": "sip:bob@x", "ok": True, "code": 200, "reason": "OK", "attempts": 1}
    ]


def test_a_send_gives_up_when_registration_does_not_come() -> None:
    out, clock, sent, reports = _outgoing(timeout_s=5)
    out.submit("a", "sip:bob@x", "hi")
    clock.now = 5
    out.tick()
    assert sent == []
    assert reports[0]["ok"] is False and reports[0]["code"] is None
    assert reports[0]["reason"] == "SIP not registered within 5 s"


def test_transient_failures_are_retried_a_bounded_number_of_times() -> None:
    out, clock, sent, reports = _outgoing(retries=2)
    out.set_ready(True)
    out.submit("a", "sip:bob@x", "hi")
    for expected_attempts in (1, 2):
        assert out.on_status("a", 503, "Service Unavailable")
        assert reports == []
        clock.now += 10
        out.tick()
        assert len(sent) == expected_attempts + 1
    out.on_status("a", 408, "Request Timeout")
    assert (reports[0]["code"], reports[0]["attempts"]) == (408, 3)


def test_permanent_failures_are_reported_at_once() -> None:
    out, _, sent, reports = _outgoing()
    out.set_ready(True)
    out.submit("a", "sip:bob@x", "hi")
    out.on_status("a", 404, "Not Found")
    assert sent == ["a"]
    assert (reports[0]["ok"], reports[0]["code"], reports[0]["reason"]) == (False, 404, "Not Found")


def test_a_send_that_cannot_start_is_reported() -> None:
    out, _, _, reports = _outgoing(refuse="no transport")
    out.set_ready(True)
    out.submit("a", "sip:bob@x", "hi")
    assert (reports[0]["ok"], reports[0]["reason"]) == (False, "no transport")


def test_a_retry_waits_again_while_unregistered() -> None:
    out, clock, sent, reports = _outgoing(timeout_s=5)
    out.set_ready(True)
    out.submit("a", "sip:bob@x", "hi")
    out.on_status("a", 503, "Service Unavailable")
    out.set_ready(False)
    clock.now = 3
    out.tick()
    assert (sent, reports) == (["a"], [])
    clock.now = 5.5  # past the first deadline: the retry's own wait started at its due time (1 s)
    out.tick()
    assert reports == []
    out.set_ready(True)
    assert sent == ["a", "a"]


def test_an_id_in_use_is_refused_and_unknown_statuses_are_not_ours() -> None:
    out, _, _, reports = _outgoing()
    out.submit("a", "sip:bob@x", "hi")
    out.submit("a", "sip:bob@x", "again")
    assert reports[0]["reason"] == "id 'a' is already being sent"
    assert out.on_status("zzz", 200, "OK") is False


def test_stopping_reports_what_is_still_open() -> None:
    out, _, _, reports = _outgoing()
    out.submit("a", "sip:bob@x", "hi")
    out.abandon("agent stopped")
    out.tick()
    assert [(r["id"], r["ok"], r["reason"]) for r in reports] == [("a", False, "agent stopped")]


def test_open_requests_are_bounded_and_the_rest_refused_at_once() -> None:
    out, _clock, sent, reports = _outgoing()
    for i in range(150):  # SIP is down: every request waits
        out.submit(f"r{i}", "sip:bob@x", "hi")
    assert len(reports) == 50
    assert all(r["ok"] is False and r["id"] in {f"r{i}" for i in range(100, 150)} for r in reports)
    assert reports[0]["reason"] == "100 MESSAGEs are already waiting to be sent; try again later"
    out.set_ready(True)
    assert len(sent) == 100
    out.on_status("r0", 200, "OK")
    out.submit("again", "sip:bob@x", "hi")  # room for one more
    assert sent[-1] == "again"


def test_the_content_type_reaches_sip_plain_text_unless_said() -> None:
    seen: list[str] = []
    out = Outgoing(lambda r: seen.append(r.content_type), lambda o: None, timeout_s=5, retries=0)
    out.set_ready(True)
    out.submit("a", "sip:bob@x", "hi")
    out.submit("b", "sip:bob@x", "{}", "application/json")
    assert seen == ["text/plain", "application/json"]


def test_only_a_2xx_is_success() -> None:
    out, _, _, reports = _outgoing(retries=0)
    out.set_ready(True)
    out.submit("a", "sip:bob@x", "hi")
    out.on_status("a", 300, "Multiple Choices")
    out.submit("b", "sip:bob@x", "hi")
    out.on_status("b", 299, "Odd but fine")
    assert [(r["id"], r["ok"]) for r in reports] == [("a", False), ("b", True)]


def test_retries_wait_1_2_4_8_then_8_seconds() -> None:
    out, clock, sent, reports = _outgoing(retries=5)
    out.set_ready(True)
    out.submit("a", "sip:bob@x", "hi")
    for delay in (1.0, 2.0, 4.0, 8.0, 8.0):
        assert out.on_status("a", 408, "Request Timeout")
        attempts = len(sent)
        clock.now += delay - 0.001
        out.tick()
        assert len(sent) == attempts, f"retried before {delay} s"
        clock.now += 0.001
        out.tick()
        assert len(sent) == attempts + 1, f"not retried after {delay} s"
    out.on_status("a", 408, "Request Timeout")
    assert reports[-1]["attempts"] == 6 and reports[-1]["ok"] is False


def test_one_request_in_flight_does_not_hold_back_the_others() -> None:
    out, clock, sent, _ = _outgoing(retries=1)
    out.set_ready(True)
    out.submit("a", "sip:bob@x", "first")  # sent, awaiting its status
    out.submit("b", "sip:bob@x", "second")
    out.on_status("b", 503, "Service Unavailable")
    clock.now += 1
    out.tick()
    assert sent == ["a", "b", "b"]


def test_an_id_is_free_again_once_its_request_ended() -> None:
    out, _, _, reports = _outgoing(refuse="not a SIP URI")
    out.set_ready(True)
    out.submit("a", "nobody", "hi")
    out.submit("a", "nobody", "hi")
    assert [r["reason"] for r in reports] == ["not a SIP URI", "not a SIP URI"]
