"""What each signal does to the agent: no signal a person or systemd may send kills it uncleanly.

The default action of most signals ends a process on the spot: outputs stay where they are,
watchers are never told, MQTT gets the broker's will instead of a goodbye. So every signal
that can be caught gets a meaning here (`disposition`, pure), and `install` sets it up:

- TERM, INT, QUIT: stop cleanly (outputs safe, presence closed, unregister, goodbye).
- HUP: `ReloadRequested` (what a service manager's reload sends).
- USR1, USR2: log the status and the counters; nothing changes.
- PIPE, XFSZ: ignored; the write that caused them fails with an error the agent handles.
- Every other signal whose default would end the process (ALRM, VTALRM, PROF, IO, PWR,
  STKFLT, XCPU, the real-time signals): logged and ignored.

Left as they are: ABRT (what systemd's watchdog sends a hung agent: Python prints every
thread's stack first) and the fault signals SEGV, BUS, FPE, ILL, SYS, TRAP, which mean the
process is broken. KILL and STOP cannot be caught. After any of those the next start opens
every output at its safe state.
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Callable
from typing import Literal

Disposition = Literal["stop", "reload", "status", "ignore", "log", "default"]

_STOP = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}
_IGNORE = {signal.SIGPIPE, signal.SIGXFSZ}
_FATAL = {
    signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL,
    signal.SIGSYS, signal.SIGTRAP, signal.SIGKILL, signal.SIGSTOP,
}  # fmt: skip
# Signals whose default is to do nothing, or to stop (suspend) the process: left alone.
_HARMLESS = {
    signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH,
    signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
}  # fmt: skip


def disposition(signum: int) -> Disposition:
    """What the agent does on `signum`."""
    if signum in _STOP:
        return "stop"
    if signum == signal.SIGHUP:
        return "reload"
    if signum in (signal.SIGUSR1, signal.SIGUSR2):
        return "status"
    if signum in _IGNORE:
        return "ignore"
    if signum in _FATAL or signum in _HARMLESS:
        return "default"
    return "log"


def name_of(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIGRTMIN+{signum - signal.SIGRTMIN}"


def catchable() -> list[int]:
    """Every signal number this system has, the real-time ones included."""
    return sorted(set(signal.valid_signals()))


# Signals received and not yet acted on, oldest first (see `install`).
_pending: queue.SimpleQueue[int] = queue.SimpleQueue()
_waker: Callable[[], None] | None = None
_thread: threading.Thread | None = None


def waited() -> set[int]:
    """The signals the agent acts on itself: every one whose disposition is not a default."""
    return {s for s in catchable() if disposition(s) in ("stop", "reload", "status", "log")}


def set_waker(waker: Callable[[], None] | None) -> None:
    """What to call (from the signal thread) so that the owner loop takes the signal at once."""
    global _waker
    _waker = waker


def take() -> list[int]:
    """The signals received since the last call, oldest first."""
    taken = []
    while True:
        try:
            taken.append(_pending.get_nowait())
        except queue.Empty:
            return taken


def install() -> None:
    """Take every signal with a meaning on a thread of its own; ignore PIPE and XFSZ.

    Call it on the main thread before any other thread starts, as early as possible (until
    then a HUP ends the process): the signals are blocked here, and every thread started
    later inherits the block, so only the signal thread ever receives them, one at a time,
    with `sigwait`. Python's own handlers would not do: they run on faulthandler's small
    alternate stack, and a burst of signals nests them until it overflows (a SIGSEGV,
    seen with 31 real-time signals sent at once); and a signal interrupting pjlib's
    select() is one more thing that could go wrong there. Installing again is harmless.
    """
    global _thread
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(signum, signal.SIG_IGN)
    wanted = waited()
    signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    if _thread is None:
        _thread = threading.Thread(target=_receive, args=(wanted,), name="signals", daemon=True)
        _thread.start()


def _receive(wanted: set[int]) -> None:
    while True:
        _pending.put(signal.sigwait(wanted))
        waker = _waker
        if waker is not None:
            waker()
