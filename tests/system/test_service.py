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

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "sipagent.service"


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


def _one(key: str) -> str:
    values = _unit_settings()[key]
    assert len(values) == 1, (key, values)
    return values[0]


# What systemd's Restart= setting restarts after (systemd.service(5), the table under
# Restart=): the exit causes, for the values that restart after any.
RESTARTED_AFTER = {
    "always": {"clean-exit", "unclean-exit", "unclean-signal", "timeout", "watchdog"},
    "on-success": {"clean-exit"},
    "on-failure": {"unclean-exit", "unclean-signal", "timeout", "watchdog"},
    "on-abnormal": {"unclean-signal", "timeout", "watchdog"},
    "on-watchdog": {"watchdog"},
    "on-abort": {"unclean-signal"},
}


def test_unit_waits_for_ready_and_the_agent_pings_in_time(monkeypatch):
    # Type=notify: systemd waits for the READY=1 the agent sends (tested below), from the
    # main process, which is the one that sends it.
    assert _one("Type") == "notify" and _one("NotifyAccess") == "main"
    watchdog_s = int(_one("WatchdogSec"))
    from agent.adapters.service import Notifier
    from agent.loop import IDLE_WAIT_S, LOOP_STALL_S

    # systemd hands the agent WatchdogSec as WATCHDOG_USEC: it pings at half of it ...
    monkeypatch.setenv("WATCHDOG_USEC", str(watchdog_s * 1_000_000))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert Notifier().watchdog_interval_s == watchdog_s / 2
    # ... from a loop that turns at least that often while idle, and that calls a turn
    # older than LOOP_STALL_S a hang before systemd's own watchdog would.
    assert watchdog_s / 2 > IDLE_WAIT_S
    assert watchdog_s > LOOP_STALL_S


def test_unit_restarts_after_crashes_and_watchdog_timeouts_but_not_after_a_stop():
    restarts = RESTARTED_AFTER.get(_one("Restart"), set())
    assert {"unclean-signal", "watchdog", "timeout"} <= restarts
    assert "clean-exit" not in restarts  # `systemctl stop` and SIGTERM end with status 0
    # The start limit can trip: the restarts it counts fit in its interval.
    burst, interval = int(_one("StartLimitBurst")), int(_one("StartLimitIntervalSec"))
    assert burst > 0 and burst * int(_one("RestartSec")) < interval


def test_unit_gives_a_first_register_lost_entirely_time_for_a_retry():
    from agent.config.model import SipRecoveryConfig

    # READY=1 waits for the registration. A REGISTER nobody answers fails after pjsip's
    # Timer F (64 x T1 = 32 s over UDP); the retry follows after retry_min_s.
    assert int(_one("TimeoutStartSec")) > 32 + SipRecoveryConfig().retry_min_s


def test_gpio_chips_are_allowed_by_class_not_by_a_glob():
    # systemd 252 (Bookworm) ignores globs in DeviceAllow= (docs/systemd.md): a glob would
    # deny every chip.
    allowed = _unit_settings()["DeviceAllow"]
    assert allowed and all("*" not in a and a.split()[0] == "char-gpiochip" for a in allowed)
    assert _one("DevicePolicy") == "closed"


def test_the_service_runs_as_the_user_and_groups_the_installer_creates():
    install = (UNIT.parents[1] / "scripts" / "install.sh").read_text()
    useradd = next(line for line in install.splitlines() if "useradd" in line)
    user, group, extra = _one("User"), _one("Group"), _one("SupplementaryGroups")
    assert f"--groups {extra}" in useradd and "--user-group" in useradd
    assert f'--shell /usr/sbin/nologin --comment "sipagent service" {user}' in install
    assert group == user  # --user-group makes the group of the user's name
    assert f"groupadd --system {extra}" in install


def test_what_the_agent_writes_is_inside_the_directories_systemd_makes_for_it():
    from agent.adapters.status_socket import server_path
    from agent.config.statedir import default_path

    assert _one("ProtectSystem") == "strict"  # so nothing else is writable
    state = f"/var/lib/{_one('StateDirectory')}"
    runtime = f"/run/{_one('RuntimeDirectory')}"
    # What systemd sets for those settings:
    assert default_path({"STATE_DIRECTORY": state}).startswith(state + "/")
    socket_path = server_path({"RUNTIME_DIRECTORY": runtime})
    assert socket_path is not None and socket_path.startswith(runtime + "/")
    # lgpio makes FIFOs in the working directory: it must be writable (gpiozero #1106).
    assert _one("WorkingDirectory") == runtime


def test_every_credential_the_unit_loads_is_found_by_the_config_that_names_it(
    tmp_path, monkeypatch
):
    """LoadCredential=<id>:<path>: systemd copies <path> to $CREDENTIALS_DIRECTORY/<id>
    (a directory's files as <id>_<file>); the config names them as README and
    examples/agent.toml say. The files are those install.sh creates."""
    from agent.config.load import load_config

    credentials = tmp_path / "credentials"
    credentials.mkdir()
    install = (UNIT.parents[1] / "scripts" / "install.sh").read_text()
    loaded = dict(entry.split(":", 1) for entry in _unit_settings()["LoadCredential"])
    for ident, source in loaded.items():
        assert source.startswith("/etc/sipagent/"), source
        name = source.removeprefix("/etc/sipagent/")
        assert name in install, f"install.sh does not create {source}"
        if ident == "totp":  # a directory: one credential per file
            (credentials / "totp_alice").write_text("JBSWY3DPEHPK3PXP\n")
        else:
            (credentials / ident).write_text(f"{ident}-secret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    config_file = tmp_path / "agent.toml"
    config_file.write_text(
        '[device]\nid = "porch"\n'
        '[sip]\nuri = "sip:porch@pbx.example.org"\nregistrar = "sip:pbx.example.org"\n'
        'password_file = "sip-password"\n'
        '[access.users."sip:alice@pbx.example.org"]\ntotp_secret_file = "totp/alice"\n'
        '[mqtt]\nhost = "localhost"\nusername = "porch"\npassword_file = "mqtt-password"\n'
    )
    config = load_config(str(config_file))
    assert config.sip.password == "sip-password-secret"
    assert config.mqtt is not None and config.mqtt.password == "mqtt-password-secret"
    assert config.access.users[0].totp_secret is not None
    assert set(loaded) == {"sip-password", "mqtt-password", "totp"}


def test_unit_reloads_with_sighup():
    # `systemctl reload sipagent`: agent.loop turns SIGHUP into a ReloadRequested event.
    assert _unit_settings()["ExecReload"] == ["/bin/kill -HUP $MAINPID"]


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


def test_watchdog_pings_stop_while_registration_fails_past_the_grace(kamailio, agent_factory):
    """The owner loop's health gate, fast: the container test (tests/system/test_install.py) shows
    systemd restarting the agent for it; this one shows the pings stopping."""
    grace_s = 10  # the smallest watchdog.registration_grace_s
    agent = agent_factory(
        agent_toml(
            kamailio, password="wrong", extra=f"[watchdog]\nregistration_grace_s = {grace_s}\n"
        ),
        watchdog_usec=1_000_000,  # a ping every 0.5 s while healthy
    )
    sick_at = agent.notify.wait_for_status("UNHEALTHY: registration failing", grace_s + 20)
    pings = agent.notify.times("WATCHDOG", "1")
    assert pings and pings[0] < sick_at, "no ping while registration was within its grace"
    # Unhealthy from here on (the password stays wrong): STATUS goes on, pings do not.
    wait_until(
        lambda: len([t for t, f in agent.notify.messages if "STATUS" in f and t > sick_at]) >= 4,
        15,
        "four more STATUS= while unhealthy",
    )
    late = [t for t in agent.notify.times("WATCHDOG", "1") if t > sick_at]
    assert late == [], f"{len(late)} pings while unhealthy: {agent.notify.statuses()[-3:]}"
    assert "unhealthy: registration failing" in agent.log.read_text()
    assert agent.notify.times("READY") == []


def test_sigint_stops_cleanly_too(agent_factory):
    port = free_port()
    agent = agent_factory(agent_toml(listen=f"127.0.0.1:{port}"))
    agent.wait_ready()
    agent.proc.send_signal(signal.SIGINT)
    assert agent.wait_exit(timeout=10)["code"] == 0
    assert agent.notify.times("STOPPING", "1")
