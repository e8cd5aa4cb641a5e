"""One-time codes as a door (agent.core.codes) on its edges, with a fake wall clock: the
skew window, the lockout's exact boundaries and its doubling, what is written to flash and
when, a damaged record, and the name a secret is stored under (it must not change between
versions, or spent codes would work again after an upgrade).

The codes themselves come from RFC 6238's algorithm (agent.core.totp, checked against the
RFC's vectors in test_totp.py) at times chosen here.
"""

from __future__ import annotations

from agent.core.codes import CodeGuard, SecretState, Verdict, fingerprint
from agent.core.totp import totp
from lab.fakes import Clock

KEY = b"12345678901234567890"
T0 = 1_800_000_000.0  # a multiple of 30 s: the start of a time step


class Store:
    """A code store that records each write and whether it was synced to flash."""

    def __init__(self, damaged: bool = False, ok: bool = True) -> None:
        self.states: dict[str, SecretState] = {}
        self.writes: list[bool] = []  # sync of each save
        self.damaged, self.ok = damaged, ok

    def load(self) -> tuple[dict[str, SecretState], bool]:
        return dict(self.states), self.damaged

    def save(self, states: dict[str, SecretState], *, sync: bool) -> bool:
        self.states = dict(states)
        self.writes.append(sync)
        return self.ok


def guard(store: Store | None = None, **kw: float) -> tuple[CodeGuard, Clock]:
    clock = Clock(T0)
    return CodeGuard(store or Store(), clock, **kw), clock  # type: ignore[arg-type]


def test_a_secret_is_stored_under_the_same_name_in_every_version() -> None:
    assert fingerprint(KEY) == "3469ef9fd3ef9cb993f5e748"
    assert KEY.hex() not in fingerprint(KEY)


def test_the_codes_of_the_step_before_now_and_after_are_taken_no_others() -> None:
    for offset, verdict in [
        (-60, Verdict.WRONG),
        (-30, Verdict.ACCEPTED),
        (0, Verdict.ACCEPTED),
        (30, Verdict.ACCEPTED),
        (60, Verdict.WRONG),
        (-300, Verdict.WRONG),
    ]:
        g, _ = guard(failures=100)
        assert g.check(KEY, totp(KEY, T0 + offset)).verdict is verdict, offset


def test_a_right_code_is_synced_to_flash_a_wrong_one_is_not() -> None:
    store = Store()
    g, _ = guard(store)
    assert g.check(KEY, totp(KEY, T0)).verdict is Verdict.ACCEPTED
    assert g.check(KEY, "000000").verdict is Verdict.WRONG
    assert store.writes == [True, False]


def test_the_lockout_starts_at_the_nth_wrong_code_and_ends_on_the_second() -> None:
    g, clock = guard(failures=3, lockout_s=100.0)
    assert [g.check(KEY, "000000").failures for _ in range(2)] == [1, 2]
    third = g.check(KEY, "000000")
    assert (third.verdict, third.lockout_started, third.locked_for_s, third.failures) == (
        Verdict.WRONG,
        True,
        100.0,
        3,
    )
    clock.now = T0 + 40
    locked = g.check(KEY, totp(KEY, clock.now))
    assert (locked.verdict, locked.locked_for_s, locked.failures) == (Verdict.LOCKED, 60.0, 0)
    clock.now = T0 + 100  # exactly when it ends
    assert g.check(KEY, totp(KEY, clock.now)).verdict is Verdict.ACCEPTED


def test_after_a_lockout_it_takes_n_more_wrong_codes_and_the_next_lockout_is_twice_as_long() -> (
    None
):
    g, clock = guard(failures=3, lockout_s=100.0)
    for _ in range(3):
        g.check(KEY, "000000")
    clock.now = T0 + 100
    assert [g.check(KEY, "000000").lockout_started for _ in range(3)] == [False, False, True]
    clock.now = T0 + 100 + 199
    assert g.check(KEY, "000000").verdict is Verdict.LOCKED
    clock.now = T0 + 100 + 200
    assert g.check(KEY, "000000").verdict is Verdict.WRONG


def test_wrong_codes_count_within_lockout_s_of_the_first_one() -> None:
    g, clock = guard(failures=2, lockout_s=100.0)
    g.check(KEY, "000000")
    clock.now = T0 + 100  # still within the window (it ends after lockout_s)
    assert g.check(KEY, "000000").lockout_started
    g2, clock2 = guard(failures=2, lockout_s=100.0)
    g2.check(KEY, "000000")
    clock2.now = T0 + 100.5
    assert g2.check(KEY, "000000").failures == 1  # a new window


def test_a_damaged_record_takes_no_code_valid_now_only_later_ones() -> None:
    store = Store(damaged=True)
    g, clock = guard(store)
    assert g.check(KEY, totp(KEY, T0)).verdict is Verdict.WRONG
    assert g.check(KEY, totp(KEY, T0 + 30)).verdict is Verdict.WRONG
    clock.now = T0 + 60
    assert g.check(KEY, totp(KEY, clock.now)).verdict is Verdict.ACCEPTED


def test_the_store_is_read_at_start_a_spent_code_stays_spent() -> None:
    store = Store()
    g, _ = guard(store)
    code = totp(KEY, T0)
    assert g.check(KEY, code).verdict is Verdict.ACCEPTED
    again, _ = guard(store)  # a restart
    assert again.check(KEY, code).verdict is Verdict.WRONG
