"""The guard around pjsua2 callbacks: an exception is logged, counted and dropped."""

from __future__ import annotations

import logging

import pytest

from agent.adapters.sip import guard
from agent.adapters.sip.guard import guarded
from agent.core.counters import Counters
from agent.core.lograte import LogThrottle


class Callbacks:
    def __init__(self) -> None:
        self.counters = Counters()
        self.seen: list[str] = []

    @guarded("on_thing", default=500)
    def onThing(self, what: str) -> int:
        self.seen.append(what)
        if what == "bad":
            raise UnicodeEncodeError("utf-8", "\udcfc", 0, 1, "surrogates not allowed")
        return 200


def test_a_failing_callback_returns_its_default_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The guard's one-line-a-minute throttle lives as long as the process: a fresh one, so
    # that the test holds when it runs twice in one process (scripts/mutation.py does).
    monkeypatch.setattr(guard, "_quiet", LogThrottle(guard.log))
    cb = Callbacks()
    with caplog.at_level(logging.WARNING):
        assert cb.onThing("bad") == 500
        assert cb.onThing("good") == 200
        assert cb.onThing("bad") == 500
    assert cb.seen == ["bad", "good", "bad"]
    assert cb.counters.get("sip.callback.on_thing.failed") == 2
    failures = [r for r in caplog.records if "on_thing failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None  # then quiet for a minute
