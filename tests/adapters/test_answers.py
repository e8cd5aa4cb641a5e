"""Answering MESSAGE after it is stored (pjproject 2.16+), against a fake of pjsua2's surface.

CI has only the 2.15.1 wheel, which has no deferred responses: these tests pin the logic;
the end-to-end tests (test_bridge_e2e.py) run it on whichever binding is installed.
"""

from __future__ import annotations

import pytest

from agent.adapters.sip.answers import Answers
from agent.adapters.sip.binding import defers_answers
from agent.core.counters import Counters
from lab import fakepj
from lab.fakepj import Account, OnInstantMessageParam


@pytest.fixture(autouse=True)
def fresh_library() -> None:
    fakepj.LIBRARY = fakepj.Library()


def answers(deferred: bool = True) -> tuple[Answers, Counters]:
    counters = Counters()
    a = Answers(fakepj, deferred, counters.bump)  # type: ignore[arg-type]
    return a, counters


def test_the_fake_has_the_surface_the_agent_detects():
    assert defers_answers(fakepj)  # type: ignore[arg-type]


def test_configure_turns_pjsuas_automatic_answer_off_only_where_deferred():
    cfg = fakepj.AccountSipConfig()
    answers(deferred=False)[0].configure(cfg)
    assert cfg.autoRespondSipMessage is True
    answers(deferred=True)[0].configure(cfg)
    assert cfg.autoRespondSipMessage is False


def test_an_explicit_answer_goes_out_once_and_nothing_stays_held():
    a, _ = answers()
    with a.held("m1", OnInstantMessageParam("tsx1"), Account()) as admitted:
        assert admitted and a.pending == 1
        assert a.answer("m1", 500, "Not Stored")
        assert not a.answer("m1", 200, "OK")  # a second answer is refused here, not by pjsua
    assert fakepj.LIBRARY.answered == {"tsx1": [500]}
    assert a.pending == 0 and fakepj.LIBRARY.alive == 0


def test_a_listener_that_returns_without_answering_gets_200_for_its_message():
    a, _ = answers()
    with a.held("m1", OnInstantMessageParam("tsx1"), Account()):
        pass
    assert fakepj.LIBRARY.answered == {"tsx1": [200]}
    assert fakepj.LIBRARY.alive == 0


def test_a_listener_that_raises_gets_500_and_the_error_goes_on():
    a, counters = answers()
    with pytest.raises(ZeroDivisionError), a.held("m1", OnInstantMessageParam("tsx1"), Account()):
        raise ZeroDivisionError
    assert fakepj.LIBRARY.answered == {"tsx1": [500]}
    assert counters.get("sip.message.answered_500.refused") == 1
    assert fakepj.LIBRARY.alive == 0


def test_refusing_answers_503_and_the_message_is_not_handled():
    a, counters = answers()
    a.refusing = True
    with a.held("m1", OnInstantMessageParam("tsx1"), Account()) as admitted:
        assert not admitted
    assert fakepj.LIBRARY.answered == {"tsx1": [503]}
    assert counters.get("sip.message.answered_503.refused") == 1
    assert fakepj.LIBRARY.alive == 0


def test_with_pjsua_answering_itself_nothing_is_held_refused_or_sent():
    a, _ = answers(deferred=False)
    a.refusing = True  # 2.15 answered 200 already: the message must be handled regardless
    with a.held("m1", OnInstantMessageParam("tsx1"), Account()) as admitted:
        assert admitted
        assert not a.answer("m1", 200, "OK")
    assert fakepj.LIBRARY.answered == {} and fakepj.LIBRARY.alive == 0


def test_close_answers_whatever_is_held_with_503_before_the_library_goes():
    a, _ = answers()
    held = a.held("m1", OnInstantMessageParam("tsx1"), Account())
    held.__enter__()  # a callback interrupted mid-way (the process is shutting down)
    a.close()
    assert fakepj.LIBRARY.answered == {"tsx1": [503]}
    fakepj.LIBRARY.destroy()  # would abort the process if a clone were still alive
    assert not a.answer("m1", 200, "OK")


def test_a_failed_send_is_counted_and_releases_the_request():
    a, counters = answers()
    fakepj.LIBRARY.fail_send = True
    with a.held("m1", OnInstantMessageParam("tsx1"), Account()):
        assert not a.answer("m1", 200, "OK")
    assert counters.get("sip.message.answer_failed") == 1
    assert fakepj.LIBRARY.alive == 0 and a.pending == 0


def test_a_request_that_cannot_be_cloned_is_counted_and_still_handled():
    a, counters = answers()
    fakepj.LIBRARY.fail_clone = True
    with a.held("m1", OnInstantMessageParam("tsx1"), Account()) as admitted:
        assert admitted
    assert counters.get("sip.message.unanswerable") == 1
    assert fakepj.LIBRARY.answered == {}


def test_without_an_account_the_answer_fails_cleanly():
    a, counters = answers()
    with a.held("m1", OnInstantMessageParam("tsx1"), None):
        pass
    assert counters.get("sip.message.answer_failed") == 1
    assert fakepj.LIBRARY.alive == 0


def test_each_message_is_answered_through_the_account_it_came_in_on():
    a, _ = answers()
    main, provider = RecordingAccount(), RecordingAccount()
    with (
        a.held("m1", OnInstantMessageParam("tsx1"), main),
        a.held("m2", OnInstantMessageParam("tsx2"), provider),
    ):
        assert a.answer("m2", 500, "Not Stored")
    assert (main.codes, provider.codes) == ([200], [500])
    assert fakepj.LIBRARY.answered == {"tsx1": [200], "tsx2": [500]}
    assert fakepj.LIBRARY.alive == 0


class RecordingAccount(Account):
    """An account ([[sip.accounts]]) that notes what went out through it."""

    def __init__(self) -> None:
        self.codes: list[int] = []

    def sendResponse(self, prm: fakepj.SendResponseParam) -> None:
        super().sendResponse(prm)
        self.codes.append(prm.code)
