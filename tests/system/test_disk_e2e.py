"""The agent on a hostile disk (issue 13, items 4 and 5): degrade, don't die.

The state directory is a 1 MiB tmpfs the test fills (root), a read-only bind mount, or holds
a damaged outbox.db. Each time: the agent keeps running, GPIO and MQTT keep working, every
MESSAGE answered 200 reaches MQTT, STATUS=, the log (once) and `B/outbox` say what is wrong,
and the agent is durable again once the disk is. `check-config` warns about what it can see
beforehand.

How a MESSAGE the disk does not take is answered depends on the binding (README "The
outbox"): pjsua 2.15 has answered 200 before the agent sees it, so the agent keeps it in
memory and obeys it; with pjproject 2.16+ (deferred answers) it is answered 500 and neither
obeyed nor relayed, the sender keeps it, and the same MESSAGE sent again once the disk takes
writes is answered 200, obeyed and relayed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pjsua2

from agent.adapters.sip.binding import defers_answers
from lab.configs import agent_toml
from lab.disk import fill, read_only, tmpfs
from lab.mqttprobe import MqttProbe, first_seen
from lab.ports import free_port
from lab.waiting import wait_until

FAST_RECONNECT = {"reconnect_max": 1}
DEFERRED = defers_answers(pjsua2)  # pjproject 2.16+: MESSAGE answered once it is stored
NOT_DURABLE = "OUTBOX NOT DURABLE"


def _status(agent) -> str:  # type: ignore[no-untyped-def]
    statuses = agent.notify.statuses()
    return statuses[-1] if statuses else ""


def _start(agent_factory, broker, device_id: str, state: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    config = agent_toml(
        listen=f"127.0.0.1:{port}",
        mosquitto=broker,
        device_id=device_id,
        mqtt_options=FAST_RECONNECT,
        log_level="info",
        allow=("owner", "mqtt:local"),  # B/command acts as mqtt:local
    )
    agent = agent_factory(config, extra_env={"STATE_DIRECTORY": str(state)})
    agent.wait_ready()
    return agent, f"sip:agent@127.0.0.1:{port}"


def _obeyed(agent, owner, to: str, probe, topic: str, command: str, pin: int) -> None:  # type: ignore[no-untyped-def]
    """`command` (an `on`) is answered, moves the pin, and its record reaches MQTT."""
    assert owner.send(to, command)["code"] == 200
    reply = f"ok: {command.split()[1]} on"
    assert owner.wait_message()["body"] == reply
    assert agent.pin(pin) is True
    record = probe.wait_for(topic, lambda m: m.json()["body"] == command)
    assert record.json()["command"]["result"] == reply


def _outbox_lines(agent) -> list[str]:  # type: ignore[no-untyped-def]
    return [line for line in agent.log.read_text().splitlines() if "outbox" in line]


def test_a_full_disk_loses_nothing_answered_200_and_recovers(
    tmp_path, mosquitto_factory, agent_factory, peer_factory, device_id
):
    B = f"sipagent/{device_id}"
    broker = mosquitto_factory()
    probe = MqttProbe(
        broker.host, broker.port, [f"{B}/#"], client_id=f"disk-{device_id}", clean_session=False
    )
    with tmpfs(tmp_path / "state", "1m") as state:
        agent, to = _start(agent_factory, broker, device_id, state)
        probe.wait_for(f"{B}/availability", lambda m: m.text == "online")
        broker.stop()
        wait_until(lambda: "MQTT disconnected" in _status(agent), 10, "the broker gone")
        filler = fill(state)

        owner = peer_factory(uri="sip:owner@127.0.0.1")
        bodies = ["on lamp", *(f"ok: note {i:02d} " + "x" * 200 for i in range(40))]
        for body in bodies:
            assert owner.send(to, body)["code"] == (500 if DEFERRED else 200)
        if DEFERRED:  # not kept: neither obeyed nor relayed; the sender still has them
            assert agent.pin(17) is False
        else:
            assert owner.wait_message()["body"] == "ok: lamp on"
            assert agent.pin(17) is True  # GPIO works on a full disk
        wait_until(lambda: f"{NOT_DURABLE} (disk full)" in _status(agent), 10, "STATUS=")
        assert agent.proc.poll() is None
        if DEFERRED:
            broker.start()
            probe.wait_for(f"{B}/outbox", lambda m: m.json()["trouble"] == "disk full")
            filler.unlink()
            wait_until(lambda: NOT_DURABLE not in _status(agent), 20, "durable again")
            for body in bodies:  # the sender tries again
                assert owner.send(to, body)["code"] == 200
            assert owner.wait_message()["body"] == "ok: lamp on"
            assert agent.pin(17) is True
            wait_until(
                lambda: first_seen(probe, f"{B}/message/in") == bodies,
                30,
                "every MESSAGE answered 200 on message/in, in order",
            )
            agent.close()
            probe.close()
            return

        broker.start()
        wait_until(
            lambda: first_seen(probe, f"{B}/message/in") == bodies,
            30,
            "every MESSAGE answered 200 on message/in, in order",
        )
        outbox = probe.wait_for(
            f"{B}/outbox", lambda m: m.json()["trouble"] == "disk full", consume=False
        )
        assert outbox.json()["durable"] is False
        # Said once (and at most once a minute after), not once per loop turn.
        errors = [line for line in _outbox_lines(agent) if " ERROR " in line]
        assert len(errors) <= 2, "\n".join(errors)

        filler.unlink()
        wait_until(lambda: NOT_DURABLE not in _status(agent), 20, "durable again in STATUS=")
        probe.wait_for(f"{B}/outbox", lambda m: m.json()["durable"] is True)
        assert any("outbox durable again" in line for line in _outbox_lines(agent))
        agent.close()
    probe.close()


def test_an_agent_restarted_on_a_full_disk_starts_and_works(
    tmp_path, mosquitto, agent_factory, peer_factory, device_id
):
    """Before: set_announced and forget_seen raised on a full disk, and systemd's restarts
    met the same full disk each time (a crash loop)."""
    B = f"sipagent/{device_id}"
    probe = MqttProbe(mosquitto.host, mosquitto.port, [f"{B}/#"])
    with tmpfs(tmp_path / "state", "1m") as state:
        first, _ = _start(agent_factory, mosquitto, device_id, state)
        first.close()
        filler = fill(state)
        agent, to = _start(agent_factory, mosquitto, device_id, state)
        owner = peer_factory(uri="sip:owner@127.0.0.1")
        if DEFERRED:  # answered 500 while the disk is full, obeyed once it is not
            assert owner.send(to, "on gate")["code"] == 500
            assert agent.pin(18) is False
        else:
            _obeyed(agent, owner, to, probe, f"{B}/message/in", "on gate", 18)
        probe.wait_for(f"{B}/outbox", lambda m: m.json()["trouble"] == "disk full")
        filler.unlink()
        wait_until(lambda: NOT_DURABLE not in _status(agent), 20, "durable again")
        if DEFERRED:
            _obeyed(agent, owner, to, probe, f"{B}/message/in", "on gate", 18)
        agent.terminate()
        assert agent.wait_exit()["code"] == 0
    probe.close()


def test_a_read_only_state_directory_keeps_sip_gpio_and_mqtt_working(
    tmp_path, mosquitto, agent_factory, peer_factory, device_id
):
    B = f"sipagent/{device_id}"
    probe = MqttProbe(mosquitto.host, mosquitto.port, [f"{B}/#"])
    state = tmp_path / "state"
    with read_only(state):
        agent, to = _start(agent_factory, mosquitto, device_id, state)
        owner = peer_factory(uri="sip:owner@127.0.0.1")
        if DEFERRED:
            assert owner.send(to, "on lamp")["code"] == 500  # not kept: not obeyed
            assert agent.pin(17) is False
            # The device still obeys its broker: B/command moves the pin.
            probe.publish(f"{B}/command", "on lamp")
            result = probe.wait_for(f"{B}/command/result")
            assert result.json()["result"] == "ok: lamp on" and agent.pin(17) is True
        else:
            _obeyed(agent, owner, to, probe, f"{B}/message/in", "on lamp", 17)
        assert f"{NOT_DURABLE} (not writable)" in _status(agent)
        probe.wait_for(f"{B}/outbox", lambda m: m.json()["trouble"] == "not writable")
    # Writable again (the bind mount is gone): durable within the retry interval.
    wait_until(lambda: NOT_DURABLE not in _status(agent), 20, "durable again")
    assert (state / "outbox.db").is_file()
    if DEFERRED:  # the sender tries again
        _obeyed(agent, owner, to, probe, f"{B}/message/in", "on gate", 18)
    probe.close()


def test_a_damaged_outbox_is_set_aside_and_the_agent_runs_durably(
    tmp_path, mosquitto, agent_factory, peer_factory, device_id
):
    B = f"sipagent/{device_id}"
    probe = MqttProbe(mosquitto.host, mosquitto.port, [f"{B}/message/in"])
    state = tmp_path / "state"
    state.mkdir()
    (state / "outbox.db").write_bytes(b"SQLite format 3\0" + b"\x13" * 10000)
    agent, to = _start(agent_factory, mosquitto, device_id, state)
    owner = peer_factory(uri="sip:owner@127.0.0.1")
    assert owner.send(to, "ok: after the damage")["code"] == 200
    probe.wait_for(f"{B}/message/in", lambda m: m.json()["body"] == "ok: after the damage")
    assert NOT_DURABLE not in _status(agent)
    assert [p.name for p in state.glob("outbox.db.corrupt-*")]
    assert any("set aside" in line for line in _outbox_lines(agent))
    probe.close()


def _check_config(tmp_path: Path, state: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "agent.toml"
    config.write_text(
        agent_toml(extra=f'[mqtt]\nhost = "localhost"\n[outbox]\npath = "{state}/outbox.db"\n')
    )
    return subprocess.run(
        [sys.executable, "-m", "agent", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_config_warns_about_a_state_directory_it_can_tell_is_unusable(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    assert _check_config(tmp_path, state).stdout.strip().endswith(": ok")  # no warning
    cases = {
        "not an SQLite database": lambda: (state / "outbox.db").write_text("garbage"),
        "is damaged|cannot be used": lambda: (state / "outbox.db").write_bytes(
            b"SQLite format 3\0" + b"\x13" * 10000
        ),
        "not a file": lambda: (state / "outbox.db").mkdir(),
    }
    for expected, damage in cases.items():
        target = state / "outbox.db"
        if target.is_dir():
            target.rmdir()
        else:
            target.unlink(missing_ok=True)
        damage()
        result = _check_config(tmp_path, state)
        assert result.returncode == 0, result.stdout  # the agent runs: warnings, not errors
        warnings = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1 and re.search(expected, warnings[0]), result.stdout
        assert warnings[0].startswith("warning: outbox.path: ")
    (state / "outbox.db").rmdir()
    with read_only(state):
        result = _check_config(tmp_path, state)
    assert "read-only file system" in result.stdout, result.stdout
    with tmpfs(tmp_path / "small", "1m") as small:
        fill(small)
        result = _check_config(tmp_path, small)
    assert "free on the file system" in result.stdout, result.stdout
