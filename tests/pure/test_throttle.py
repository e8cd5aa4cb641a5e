"""Saying a lasting problem once, then at most once per interval (agent.core.throttle), with
a fake clock: the first occurrence at once, later ones counted, the count handed to the next
line said, keys apart, and `forget` when the problem is over.
"""

from __future__ import annotations

from agent.core.throttle import REPEAT_S, Say, Throttle
from lab.fakes import Clock


def test_once_a_minute_with_the_count_of_what_was_kept_quiet() -> None:
    clock = Clock(100.0)
    throttle = Throttle(clock=clock)
    assert REPEAT_S == 60.0
    assert throttle.say("disk") == Say(True, 0)
    clock.now = 130.0
    assert throttle.say("disk") == Say(False, 1)
    assert throttle.say("disk") == Say(False, 2)
    clock.now = 159.9
    assert throttle.say("disk") == Say(False, 3)
    clock.now = 160.0  # a minute after it was last said
    assert throttle.say("disk") == Say(True, 3)
    clock.now = 161.0
    assert throttle.say("disk") == Say(False, 1)  # counted from the line just said
    clock.now = 219.0
    assert throttle.say("disk") == Say(False, 2)  # still within the minute from 160
    clock.now = 220.0
    assert throttle.say("disk") == Say(True, 2)


def test_keys_are_apart_and_forgetting_one_says_it_again_at_once() -> None:
    clock = Clock(0.0)
    throttle = Throttle(interval_s=10.0, clock=clock)
    assert throttle.say("a") == Say(True, 0)
    assert throttle.say("b") == Say(True, 0)
    assert throttle.say("a") == Say(False, 1)
    throttle.forget("a")
    throttle.forget("never said")
    assert throttle.say("a") == Say(True, 0)
    assert throttle.say("b") == Say(False, 1)
