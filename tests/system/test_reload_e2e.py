"""Reload end to end: SIGHUP to a real agent registered at Kamailio; rules change while the
registration stays, and a broken config changes nothing (the plan itself: test_reload.py)."""

from __future__ import annotations

import json
import socket

from lab.configs import agent_toml
from lab.waiting import wait_until


def _status(agent) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(agent.status_socket))
        s.sendall(b"status\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data)


def _reloaded(agent, count: int) -> dict:
    def seen() -> dict | None:
        status = _status(agent)
        reload = status["reload"]
        return (
            status if reload is not None and len(agent.notify.times("RELOADING")) >= count else None
        )

    return wait_until(seen, 15, "the reload's outcome in the status")


def test_sighup_applies_new_rights_and_limits_without_dropping_the_registration(
    kamailio, agent_factory, peer_factory
):
    config = agent_toml(kamailio, output_extra={"gate": 'max_pulse = "1s"'})
    agent = agent_factory(config)
    agent.wait_ready()
    owner, eve = peer_factory("owner", server=kamailio), peer_factory("eve", server=kamailio)
    owner.send(kamailio.aor("agent"), "pulse gate 5s")
    assert owner.wait_message()["body"].startswith("error: ")  # over max_pulse
    eve.send(kamailio.aor("agent"), "on lamp")
    assert eve.wait_message()["body"] == "error: forbidden"

    registered = len(agent.notify.times("READY", "1"))
    agent.config_path.write_text(
        agent_toml(kamailio, allow=("owner", "eve"), output_extra={"gate": 'max_pulse = "10s"'})
        .replace('level = "debug"', 'level = "info"')
        .replace('listen = "127.0.0.1:0"', 'listen = "127.0.0.1:1"')
    )
    agent.hangup()
    status = _reloaded(agent, 1)
    reload = status["reload"]
    assert reload["ok"]
    assert set(reload["applied"]) == {"access.allow", "gpio.outputs.gate.max_pulse", "log.level"}
    assert reload["needs_restart"] == ["sip.listen"]
    # RELOADING=1 then READY=1 again: systemd's "reloading" ends; the account stays registered.
    agent.notify.wait_for("READY", "1", timeout=10)
    wait_until(lambda: len(agent.notify.times("READY", "1")) > registered, 10, "READY=1 again")
    assert status["registration"]["state"] == "registered"
    assert any("restart needed for sip.listen" in s for s in agent.notify.statuses())

    eve.send(kamailio.aor("agent"), "on lamp")
    assert eve.wait_message()["body"] == "ok: lamp on"
    owner.send(kamailio.aor("agent"), "pulse gate 5s")
    assert owner.wait_message()["body"] == "ok: gate pulsed 5s"
    assert agent.pin(18) is True


def test_sighup_with_a_broken_config_keeps_the_running_one(kamailio, agent_factory, peer_factory):
    agent = agent_factory(agent_toml(kamailio))
    agent.wait_ready()
    agent.config_path.write_text(agent_toml(kamailio).replace('"GPIO17"', '"GPIO99"'))
    agent.hangup()
    reload = _reloaded(agent, 0)["reload"]
    assert not reload["ok"]
    assert reload["problems"] == [
        "gpio.outputs.lamp.pin: unknown pin 'GPIO99' (use GPIO0..GPIO27, BOARD<n> or a number)"
    ]
    owner = peer_factory("owner", server=kamailio)
    owner.send(kamailio.aor("agent"), "on lamp")
    assert owner.wait_message()["body"] == "ok: lamp on"
    assert "reload refused: gpio.outputs.lamp.pin" in agent.log_tail(200)
