"""One-time codes as a door (issue 13, items 14 and 15): once each, across restarts and every
path, with a lockout after wrong ones; the record in the state directory (real files).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.adapters.codestore import FILE_NAME, CodeFile
from agent.core.codes import CodeGuard, MemoryStore, SecretState, Verdict, fingerprint
from agent.core.totp import totp
from lab.disk import fill, read_only, tmpfs
from lab.fakes import Clock

KEY = b"12345678901234567890"
OTHER = b"abcdefghijabcdefghij"


def _code(clock: Clock, key: bytes = KEY, offset: float = 0) -> str:
    return totp(key, clock.now + offset)


def test_a_code_is_accepted_once_per_secret_whoever_sends_it() -> None:
    clock = Clock(1_700_000_000.0)
    guard = CodeGuard(clock=clock)
    code = _code(clock)
    assert guard.check(KEY, code).verdict is Verdict.ACCEPTED
    assert guard.check(KEY, code).verdict is Verdict.WRONG  # replayed, by anyone
    assert guard.check(OTHER, _code(clock, OTHER)).verdict is Verdict.ACCEPTED


def test_one_step_of_skew_either_way_and_no_more() -> None:
    clock = Clock(1_700_000_000.0)
    guard = CodeGuard(clock=clock)
    assert guard.check(KEY, _code(clock, offset=-30)).verdict is Verdict.ACCEPTED
    assert guard.check(KEY, _code(clock, offset=+30)).verdict is Verdict.ACCEPTED
    assert guard.check(OTHER, _code(clock, OTHER, -60)).verdict is Verdict.WRONG
    assert guard.check(OTHER, _code(clock, OTHER, +60)).verdict is Verdict.WRONG


def test_an_older_code_is_useless_after_a_newer_one() -> None:
    clock = Clock(1_700_000_000.0)
    guard = CodeGuard(clock=clock)
    assert guard.check(KEY, _code(clock)).verdict is Verdict.ACCEPTED
    assert guard.check(KEY, _code(clock, offset=-30)).verdict is Verdict.WRONG
    clock.now += 30
    assert guard.check(KEY, _code(clock)).verdict is Verdict.ACCEPTED


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12345\n"])
def test_malformed_codes_are_wrong(code: str) -> None:
    assert CodeGuard(clock=Clock(1_700_000_000.0)).check(KEY, code).verdict is Verdict.WRONG


def test_wrong_codes_lock_every_code_of_the_secret_and_the_lockout_doubles() -> None:
    clock = Clock(1_700_000_000.0)
    guard = CodeGuard(clock=clock, failures=5, lockout_s=900)
    results = [guard.check(KEY, f"{i:06d}") for i in range(5)]
    assert [r.lockout_started for r in results] == [False] * 4 + [True]
    assert results[-1].locked_for_s == 900
    locked = guard.check(KEY, _code(clock))  # even the right code
    assert locked.verdict is Verdict.LOCKED and 0 < locked.locked_for_s <= 900
    assert guard.check(OTHER, _code(clock, OTHER)).verdict is Verdict.ACCEPTED  # its own
    clock.now += 901
    again = [guard.check(KEY, f"{i:06d}") for i in range(5)]
    assert again[-1].lockout_started and again[-1].locked_for_s == 1800
    for _ in range(6):  # doubling stops at 16 times
        clock.now += 20 * 3600
        last = [guard.check(KEY, f"{i:06d}") for i in range(5)][-1]
    assert last.locked_for_s == 16 * 900
    clock.now += 16 * 900 + 1
    assert guard.check(KEY, _code(clock)).verdict is Verdict.ACCEPTED
    # A good code starts over: one wrong one locks nothing.
    assert not guard.check(KEY, "000000").lockout_started


def test_wrong_codes_far_apart_never_lock() -> None:
    clock = Clock(1_700_000_000.0)
    guard = CodeGuard(clock=clock, failures=3, lockout_s=600)
    for i in range(10):
        assert not guard.check(KEY, f"{i:06d}").lockout_started
        clock.now += 601


def test_a_guesser_gets_failures_tries_per_lockout_however_fast_he_sends() -> None:
    clock = Clock(1_700_000_000.0)
    guard = CodeGuard(clock=clock)
    tried = 0
    for _ in range(100000):  # as fast as he likes for about a day
        clock.now += 1
        if guard.check(KEY, "000000").verdict is not Verdict.LOCKED:
            tried += 1
    # Lockouts of 15 min, 30, 1 h, 2 h, then 4 h each: 11 of them in 27.8 hours.
    assert tried == 5 * 11


def test_spent_codes_and_lockouts_survive_a_restart(tmp_path: Path) -> None:
    clock = Clock(1_700_000_000.0)
    code = _code(clock)
    assert CodeGuard(CodeFile(str(tmp_path)), clock).check(KEY, code).verdict is Verdict.ACCEPTED
    restarted = CodeGuard(CodeFile(str(tmp_path)), clock)
    assert restarted.check(KEY, code).verdict is Verdict.WRONG
    for i in range(4):
        restarted.check(OTHER, f"{i:06d}")
    assert CodeGuard(CodeFile(str(tmp_path)), clock).check(OTHER, "999999").lockout_started
    locked = CodeGuard(CodeFile(str(tmp_path)), clock).check(OTHER, _code(clock, OTHER))
    assert locked.verdict is Verdict.LOCKED
    # The file names secrets by fingerprint, never the secret itself.
    text = (tmp_path / FILE_NAME).read_text()
    assert fingerprint(KEY) in text and KEY.decode() not in text


def test_a_code_that_cannot_be_recorded_is_refused(tmp_path: Path) -> None:
    clock = Clock(1_700_000_000.0)
    state = tmp_path / "state"
    with read_only(state):
        guard = CodeGuard(CodeFile(str(state)), clock)
        code = _code(clock)
        assert guard.check(KEY, code).verdict is Verdict.UNRECORDED
        assert guard.check(KEY, code).verdict is Verdict.WRONG  # spent in memory anyway
    clock.now += 30
    assert guard.check(KEY, _code(clock)).verdict is Verdict.ACCEPTED


def test_a_full_disk_still_takes_the_record(tmp_path: Path) -> None:
    clock = Clock(1_700_000_000.0)
    with tmpfs(tmp_path / "disk", "1m") as disk:
        guard = CodeGuard(CodeFile(str(disk)), clock)
        assert guard.check(KEY, _code(clock)).verdict is Verdict.ACCEPTED
        fill(disk)
        clock.now += 30
        assert guard.check(KEY, _code(clock)).verdict is Verdict.ACCEPTED  # written in place
        again = CodeGuard(CodeFile(str(disk)), clock)
        assert again.check(KEY, _code(clock)).verdict is Verdict.WRONG


@pytest.mark.parametrize(
    "damage", [b"", b"{", b"\x00" * 4096, b'{"version": 1, "secrets": {"x": 5}}', b"[]"]
)
def test_a_damaged_record_accepts_no_code_valid_now_then_works(
    tmp_path: Path, damage: bytes
) -> None:
    clock = Clock(1_700_000_000.0)
    (tmp_path / FILE_NAME).write_bytes(damage)
    guard = CodeGuard(CodeFile(str(tmp_path)), clock)
    assert guard.check(KEY, _code(clock)).verdict is Verdict.WRONG
    assert guard.check(KEY, _code(clock, offset=30)).verdict is Verdict.WRONG
    clock.now += 60
    assert guard.check(KEY, _code(clock)).verdict is Verdict.ACCEPTED
    assert json.loads((tmp_path / FILE_NAME).read_text())["version"] == 1


def test_the_memory_store_forgets_nothing_while_running() -> None:
    store = MemoryStore()
    store.save({"a": SecretState(last_step=5)}, sync=True)
    assert store.load() == ({"a": SecretState(last_step=5)}, False)
