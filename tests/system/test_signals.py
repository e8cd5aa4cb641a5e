"""Signals (issue 13, item 6): none that a person or systemd may send kills the agent uncleanly.

The agent runs in its own process (lab.agentproc); the test sends it real signals and then
checks that it still answers `status` with the lamp as it was, or, for the stop signals, that
it went through its clean shutdown (STOPPING=1, outputs back to safe, exit code 0).
"""

from __future__ import annotations

import signal

import pytest

from agent.adapters import signals
from lab.configs import agent_toml
from lab.ports import free_port
from lab.waiting import wait_until

# Every signal the agent keeps running on, by what it does.
RELOAD = [signal.SIGHUP]
STATUS = [signal.SIGUSR1, signal.SIGUSR2]
IGNORED = [signal.SIGPIPE, signal.SIGXFSZ]
LOGGED = [
    signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF, signal.SIGIO, signal.SIGPWR,
    signal.SIGSTKFLT, signal.SIGXCPU, *range(signal.SIGRTMIN, signal.SIGRTMAX + 1),
]  # fmt: skip


def test_every_catchable_signal_has_a_meaning_and_the_fatal_ones_are_left_alone() -> None:
    assert [signals.disposition(s) for s in RELOAD + STATUS] == ["reload", "status", "status"]
    assert {signals.disposition(s) for s in IGNORED} == {"ignore"}
    assert {signals.disposition(s) for s in LOGGED} == {"log"}
    for stop in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        assert signals.disposition(stop) == "stop"
    # The watchdog's ABRT and the faults keep their default: the process is broken.
    for fatal in (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGKILL):
        assert signals.disposition(fatal) == "default"
    # Nothing whose default action ends the process is left without a meaning, except those.
    terminating = set(signals.catchable()) - {
        signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH,
        signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGSTOP, signal.SIGKILL,
        signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL,
        signal.SIGSYS, signal.SIGTRAP,
    }  # fmt: skip
    assert {signals.disposition(s) for s in terminating} <= {
        "stop", "reload", "status", "ignore", "log",
    }  # fmt: skip


def _owner_says(owner, agent_uri: str, text: str) -> str:  # type: ignore[no-untyped-def]
    owner.send(agent_uri, text)
    return str(owner.wait_message(timeout=10)["body"])


def test_hup_usr_pipe_and_the_rest_leave_the_agent_running_with_its_outputs(
    agent_factory, peer_factory
):
    port = free_port()
    agent = agent_factory(agent_toml(listen=f"127.0.0.1:{port}", log_level="info"))
    # A HUP during the start (before READY) must not kill it either: the handlers are set
    # before the config is read (the interpreter's own start-up is the only window left).
    wait_until(lambda: any(e["event"] == "started" for e in agent.events), 15, "started")
    agent.proc.send_signal(signal.SIGHUP)
    agent.wait_ready()
    owner = peer_factory(uri="sip:owner@127.0.0.1")
    to = f"sip:agent@127.0.0.1:{port}"
    assert _owner_says(owner, to, "on lamp") == "ok: lamp on"

    for signum in RELOAD + STATUS + IGNORED + LOGGED:
        agent.proc.send_signal(signum)
    log = agent.log
    wait_until(
        lambda: all(
            f"{signals.name_of(s)} received and ignored" in log.read_text() for s in LOGGED
        ),
        15,
        f"every ignored signal logged; agent log:\n{agent.log_tail()}",
    )
    text = log.read_text()
    assert "reloaded: applied no change" in text  # HUP reloads (the same file: no change)
    assert "status (SIGUSR1): outputs: lamp on" in text
    assert "status (SIGUSR2): outputs: lamp on" in text

    assert agent.proc.poll() is None
    assert _owner_says(owner, to, "status").startswith("ok: outputs: lamp on")
    assert agent.pin(17) is True
    assert not agent.notify.times("STOPPING")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT])
def test_the_stop_signals_shut_down_cleanly(agent_factory, peer_factory, signum):
    port = free_port()
    agent = agent_factory(agent_toml(listen=f"127.0.0.1:{port}"))
    agent.wait_ready()
    owner = peer_factory(uri="sip:owner@127.0.0.1")
    assert _owner_says(owner, f"sip:agent@127.0.0.1:{port}", "on lamp") == "ok: lamp on"
    agent.proc.send_signal(signum)
    report = agent.wait_exit(timeout=15)
    assert report["code"] == 0
    assert report["pins"]["GPIO17"] is False  # back to its safe state
    assert agent.notify.times("STOPPING", "1")
    assert f"stopping ({signals.name_of(signum)})" in agent.log.read_text()
