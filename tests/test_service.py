"""systemd: the unit passes `systemd-analyze verify`, and the notify protocol on a real socket."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

from lab.configs import agent_toml
from lab.ports import free_port
from lab.waiting import wait_until

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "sipagent.service"


def test_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze not found: install the Debian package systemd"
    # verify checks that ExecStart exists; point it at this checkout's interpreter.
    unit = tmp_path / "sipagent.service"
    text = UNIT.read_text()
    assert "ExecStart=/opt/sipagent/bin/sipagent run" in text
    unit.write_text(text.replace("/opt/sipagent/bin/sipagent", f"{sys.executable} -m agent"))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "sipagent.service" not in result.stderr, result.stderr


def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_is_a_notify_service_with_a_watchdog():
    settings = {key: values[-1] for key, values in _unit_settings().items()}
    assert settings["Type"] == "notify"
    assert settings["NotifyAccess"] == "main"
    assert int(settings["WatchdogSec"]) == 30
    assert int(settings["RestartSec"]) == 5
    assert settings["Restart"] == "on-failure"
    assert int(settings["StartLimitBurst"]) > 0 and int(settings["StartLimitIntervalSec"]) > 0
    assert settings["DeviceAllow"] == "char-gpiochip rw"
    assert settings["User"] == "sipagent" and settings["SupplementaryGroups"] == "gpio"
    assert settings["StateDirectory"] == "sipagent"
    assert settings["ProtectSystem"] == "strict"
    # lgpio makes FIFOs in the working directory: it must be writable (gpiozero #1106).
    assert settings["WorkingDirectory"] == "/run/sipagent"
    assert settings["RuntimeDirectory"] == "sipagent"
    # gpiozero reads the board revision from /proc/device-tree or /proc/cpuinfo.
    assert "ProcSubset" not in settings


def test_unit_loads_the_secrets_as_credentials():
    # The files install.sh creates, under the names password_file uses.
    assert _unit_settings()["LoadCredential"] == [
        "sip-password:/etc/sipagent/sip-password",
        "mqtt-password:/etc/sipagent/mqtt-password",
    ]


def test_ready_watchdog_and_stopping_arrive_and_sigterm_leaves_outputs_safe(
    agent_factory, peer_factory
):
    port = free_port()
    agent = agent_factory(
        agent_toml(listen=f"127.0.0.1:{port}", allow=("owner",)), watchdog_usec=400_000
    )
    ready_at = agent.wait_ready()
    owner = peer_factory(uri="sip:owner@127.0.0.1")
    owner.send(f"sip:agent@127.0.0.1:{port}", "on lamp")
    assert owner.wait_message()["body"] == "ok: lamp on"
    assert agent.pin(17) is True
    # WATCHDOG_USEC=0.4 s asks for a ping every 0.2 s: several after READY show they repeat.
    wait_until(
        lambda: len([t for t in agent.notify.times("WATCHDOG", "1") if t > ready_at]) >= 3,
        10,
        "repeated WATCHDOG=1 after READY",
    )
    agent.terminate()
    report = agent.wait_exit(timeout=10)
    assert report["code"] == 0
    assert report["pins"]["GPIO17"] is False  # lamp back to its safe state
    assert agent.notify.times("STOPPING", "1")
    assert agent.proc.returncode == 0


def test_sigint_stops_cleanly_too(agent_factory):
    port = free_port()
    agent = agent_factory(agent_toml(listen=f"127.0.0.1:{port}"))
    agent.wait_ready()
    agent.proc.send_signal(signal.SIGINT)
    assert agent.wait_exit(timeout=10)["code"] == 0
    assert agent.notify.times("STOPPING", "1")
