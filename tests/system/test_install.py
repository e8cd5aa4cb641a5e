"""scripts/install.sh and the unit on a real systemd: a booted Debian bookworm container.

One container per module, installed once as a user would (``scripts/install.sh``); the tests
then share it in file order, the uninstall last. The service inside reaches this module's
Kamailio and the session's Mosquitto on the host's 127.0.0.1 (the container shares the
network). A drop-in shortens WatchdogSec and RestartSec so that restarts take seconds; the
shipped values are checked in tests/system/test_service.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from agent.core.totp import decode_secret, totp
from lab.configs import agent_toml
from lab.kamailio import DEFAULT_USERS, Kamailio
from lab.mosquitto import Mosquitto
from lab.nspawn import Container
from lab.sippflood import sipp_flood
from lab.waiting import wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SRC = "/root/sipagent"
COPY_IGNORE = (".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache")
WATCHDOG_S, RESTART_S = 5, 1
GRACE_S = 10
DROP_IN = f"""[Service]
WatchdogSec={WATCHDOG_S}
RestartSec={RESTART_S}
"""
# What install.sh may take in the worst case: apt, a venv and pip from the registries.
INSTALL_TIMEOUT = 600


class Service:
    """sipagent.service inside the container, seen through systemctl and journalctl."""

    def __init__(self, container: Container) -> None:
        self.c = container

    def show(self, prop: str) -> str:
        return self.c.run(["systemctl", "show", "-P", prop, "sipagent.service"]).stdout.strip()

    def main_pid(self) -> int:
        return int(self.show("MainPID") or 0)

    def state(self) -> str:
        return self.show("ActiveState")

    def wait_active(self, timeout: float = 60) -> int:
        def active() -> int:
            return self.main_pid() if self.state() == "active" else 0

        return wait_until(active, timeout, f"sipagent active\n{self.journal_text()}", 0.1)

    def journal(self, *matches: str, since_cursor: str | None = None) -> list[dict]:
        argv = ["journalctl", "-u", "sipagent.service", "-o", "json", "--no-pager", *matches]
        if since_cursor:
            argv.append(f"--after-cursor={since_cursor}")
        out = self.c.run(argv, check=False).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def cursor(self) -> str | None:
        entries = self.journal("-n", "1")
        return entries[-1]["__CURSOR"] if entries else None

    def journal_text(self, lines: int = 60) -> str:
        argv = ["journalctl", "-u", "sipagent.service", "--no-pager", "-n", str(lines)]
        return self.c.run(argv, check=False).stdout

    def wait_log(
        self,
        fragment: str,
        timeout: float,
        since_cursor: str | None = None,
        not_pid: int | None = None,
    ) -> dict:
        """The first journal entry containing `fragment` (from a process other than not_pid)."""

        def found() -> dict | None:
            for entry in self.journal(since_cursor=since_cursor):
                if fragment in str(entry.get("MESSAGE", "")) and entry.get("_PID") != str(not_pid):
                    return entry
            return None

        return wait_until(found, timeout, f"{fragment!r} in the journal\n{self.journal_text()}")


@pytest.fixture(scope="module")
def registrar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    """A Kamailio of this module's own: one test stops it, one floods through it."""
    # A flood needs more than Kamailio's default 64 MB of shared memory (docs/lab.md).
    workdir = tmp_path_factory.mktemp("install-kamailio")
    with Kamailio(workdir, users=DEFAULT_USERS, shm_mb=512) as server:
        yield server


def _config(registrar: Kamailio, mosquitto: Mosquitto) -> str:
    text = agent_toml(
        registrar,
        mosquitto=mosquitto,
        transport="tcp",  # a stopped registrar is noticed at once over TCP
        device_id="nspawn",
        extra=f"[watchdog]\nregistration_grace_s = {GRACE_S}\n",
    )
    # The password comes from the credential, not from the file.
    text = re.sub(r'password = ".*"', 'password_file = "sip-password"', text, count=1)
    return text.replace('level = "debug"', 'level = "info"')


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    with Container(tmp_path_factory.mktemp("nspawn")) as c:
        c.copy_in(REPO, SRC, ignore=COPY_IGNORE)
        yield c


@pytest.fixture(scope="module")
def installed(container: Container, registrar: Kamailio, mosquitto: Mosquitto) -> dict:
    """install.sh run once, as a user would after putting the password in place."""
    c = container
    c.path("/root/agent.toml").write_text(_config(registrar, mosquitto))
    c.path("/etc/sipagent").mkdir(parents=True)
    secret = c.path("/etc/sipagent/sip-password")
    secret.write_text(registrar.users["agent"] + "\n")
    secret.chmod(0o600)
    drop_in = c.path("/etc/systemd/system/sipagent.service.d/timing.conf")
    drop_in.parent.mkdir(parents=True)
    drop_in.write_text(DROP_IN)
    started = time.monotonic()
    result = c.run(
        [f"{SRC}/scripts/install.sh", "--config", "/root/agent.toml"], timeout=INSTALL_TIMEOUT
    )
    return {"output": result.stdout, "seconds": time.monotonic() - started}


@pytest.fixture
def service(container: Container, installed: dict) -> Service:
    svc = Service(container)
    svc.wait_active()
    return svc


def test_install_starts_the_service_and_it_is_active_only_after_ready(
    installed, service, registrar
):
    assert "starting sipagent" in installed["output"]
    print(f"install.sh took {installed['seconds']:.1f} s")  # reported with -s
    assert service.show("Type") == "notify"
    assert service.show("StatusText").startswith("SIP registered")
    # With the registrar away the agent runs but cannot register, so it sends no READY=1
    # and systemd keeps it "activating"; READY=1 once it registers makes it active.
    registrar.stop()
    try:
        cursor, old_pid = service.cursor(), service.main_pid()
        service.c.run(["systemctl", "restart", "--no-block", "sipagent"])
        failed = service.wait_log("registration failed", 30, cursor, not_pid=old_pid)
        assert int(failed["_PID"]) == service.main_pid()
        assert service.state() == "activating"
    finally:
        registrar.start()
    service.wait_active(60)
    ready = service.wait_log("ready: SIP registered", 10, since_cursor=cursor)
    assert int(ready["_PID"]) == service.main_pid()


def test_the_service_obeys_a_sip_command_and_logs_structured_fields(
    service, registrar, peer_factory, probe_factory
):
    probe = probe_factory("sipagent/nspawn/message/in")
    owner = peer_factory("owner", server=registrar)
    owner.send(registrar.aor("agent"), "on lamp")
    assert owner.wait_message()["body"] == "ok: lamp on"
    relayed = probe.wait_for("sipagent/nspawn/message/in").json()
    assert relayed["command"]["result"] == "ok: lamp on"
    entry = service.wait_log("command 'on lamp' from", 10)
    assert entry["SENDER"] == registrar.aor("owner"), entry
    assert entry["COMMAND"] == "on"
    assert entry["SYSLOG_IDENTIFIER"] == "sipagent"
    assert entry["PRIORITY"] == "6"


def test_startup_logs_pjproject_version_capabilities_and_registration_status(service):
    [caps] = service.journal("PJPROJECT_VERSION=2.15.1", "-n", "1")
    assert "deferred MESSAGE responses: no" in caps["MESSAGE"]
    assert caps["PJSUA2_DEFERRED_RESPONSES"] == "0"
    registered = service.journal("SIP_STATUS=200", "REGISTRATION=registered")
    assert registered, service.journal_text()


def test_the_password_comes_through_load_credential(container, service):
    pid = service.main_pid()
    env = container.run(["cat", f"/proc/{pid}/environ"]).stdout.split("\0")
    assert "CREDENTIALS_DIRECTORY=/run/credentials/sipagent.service" in env
    # The service user cannot read the file itself: only systemd's copy reaches it.
    denied = container.run(
        ["runuser", "-u", "sipagent", "--", "cat", "/etc/sipagent/sip-password"], check=False
    )
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    assert "password =" not in container.path("/etc/sipagent/agent.toml").read_text()
    assert service.state() == "active"  # registered with it


def test_the_service_runs_in_a_working_directory_of_its_own(container, service):
    # lgpio creates its FIFOs there; on a Pi a read-only "/" would break GPIO.
    cwd = container.run(["readlink", f"/proc/{service.main_pid()}/cwd"]).stdout.strip()
    assert cwd == "/run/sipagent"
    owner = container.run(["stat", "-c", "%U %a", "/run/sipagent"]).stdout.split()
    assert owner == ["sipagent", "750"]


def test_sipagent_status_asks_the_installed_service(container, service, mosquitto):
    text = container.run(["sipagent", "status"]).stdout  # /usr/local/bin/sipagent, as root
    assert "registration:  registered (200 OK)" in text.splitlines(), text
    status = json.loads(container.run(["sipagent", "status", "--json"]).stdout)
    assert status["mqtt"] == {"connected": True, "broker": f"{mosquitto.host}:{mosquitto.port}"}
    assert status["device"] == "nspawn"
    assert status["outputs"]["lamp"]["on"] in (True, False)
    owner = container.run(["stat", "-c", "%U %a", "/run/sipagent/status.sock"]).stdout.split()
    assert owner == ["sipagent", "600"]
    # Any other user: refused by the kernel before the agent sees anything.
    other = container.run(["runuser", "-u", "nobody", "--", "sipagent", "status"], check=False)
    assert other.returncode == 1
    assert "permission denied (run as root or as the service's user)" in other.stderr


def test_systemctl_reload_applies_new_rights_and_keeps_the_registration(
    container, service, registrar, peer_factory
):
    config = container.path("/etc/sipagent/agent.toml")
    original = config.read_text()
    pid = service.main_pid()
    eve = peer_factory("eve", server=registrar)
    eve.send(registrar.aor("agent"), "on lamp")
    assert eve.wait_message()["body"] == "error: forbidden"
    config.write_text(original.replace('allow = ["', f'allow = ["{registrar.aor("eve")}", "', 1))
    try:
        cursor = service.cursor()
        container.run(["systemctl", "reload", "sipagent"])
        service.wait_log("reloaded: applied access.allow", 20, since_cursor=cursor)
        eve.send(registrar.aor("agent"), "on lamp")
        assert eve.wait_message()["body"] == "ok: lamp on"
        assert (service.main_pid(), service.state()) == (pid, "active")
        status = json.loads(container.run(["sipagent", "status", "--json"]).stdout)
        assert status["reload"]["applied"] == ["access.allow"]
        assert status["registration"]["state"] == "registered"
        # The registration was not dropped: no unregistration since the reload.
        entries = service.journal("REGISTRATION=unregistered", since_cursor=cursor)
        assert entries == []
    finally:
        config.write_text(original)
        container.run(["systemctl", "reload", "sipagent"])


def test_a_new_user_enrols_a_code_by_scanning_the_qr_and_it_opens_the_gate(
    container, service, registrar, peer_factory
):
    owner_aor = registrar.aor("owner")
    out = container.run(["sipagent", "totp", "new", owner_aor, "--png", "/root/owner.png"]).stdout
    uri = next(line for line in out.splitlines() if line.startswith("otpauth://"))
    # The phone scans the PNG: zbar reads it back.
    scanned = subprocess.run(
        ["zbarimg", "--quiet", "--raw", str(container.path("/root/owner.png"))],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    assert scanned == uri
    secret = parse_qs(urlparse(scanned).query)["secret"][0]
    name = next(p.name for p in container.path("/etc/sipagent/totp").iterdir())
    mode = container.run(["stat", "-c", "%U %a", f"/etc/sipagent/totp/{name}"]).stdout.split()
    assert mode == ["root", "600"]
    config = container.path("/etc/sipagent/agent.toml")
    original = config.read_text()
    # As the command says: the owner moves to access.users with the secret file, the gate
    # asks for a code; secrets are loaded at start, so a restart.
    enrolled = original.replace(
        f'allow = ["{owner_aor}"]', 'allow = []\nrequire_code = ["gate"]', 1
    )
    enrolled += f'\n[access.users."{owner_aor}"]\ntotp_secret_file = "totp/{name}"\n'
    config.write_text(enrolled)
    try:
        check = container.run(["sipagent", "check-config", "/etc/sipagent/agent.toml"], check=False)
        assert check.returncode == 0, check.stdout
        container.run(["systemctl", "restart", "sipagent"])
        service.wait_active()
        owner = peer_factory("owner", server=registrar)
        owner.send(registrar.aor("agent"), "pulse gate")
        assert (
            owner.wait_message()["body"]
            == "error: 'gate' needs a one-time code: send '<code> pulse gate'"
        )
        code = totp(decode_secret(secret), time.time())
        owner.send(registrar.aor("agent"), f"{code} pulse gate")
        assert owner.wait_message()["body"] == "ok: gate pulsed 1s"
    finally:
        config.write_text(original)
        container.run(["systemctl", "restart", "sipagent"])
        service.wait_active()


def test_exposure_score_is_at_most_two(container, service):
    out = container.run(["systemd-analyze", "security", "--no-pager", "sipagent.service"]).stdout
    score = float(re.search(r"Overall exposure level for sipagent\.service: ([\d.]+)", out)[1])
    print(f"systemd-analyze security: {score}")
    assert score <= 2.0, out


def test_a_hung_agent_is_restarted_by_the_watchdog(container, service):
    pid = service.main_pid()
    restarts = int(service.show("NRestarts"))
    cursor = service.cursor()
    container.run(["systemctl", "kill", "--kill-whom=main", "--signal=SIGSTOP", "sipagent"])
    stopped = time.monotonic()

    def restarted() -> int:
        new_pid = service.main_pid()
        return new_pid if new_pid not in (0, pid) and service.state() == "active" else 0

    wait_until(
        restarted,
        WATCHDOG_S + RESTART_S + 30,
        f"a new sipagent after SIGSTOP\n{service.journal_text()}",
        0.1,
    )
    took = time.monotonic() - stopped
    print(f"SIGSTOP -> active again: {took:.1f} s (WatchdogSec {WATCHDOG_S} + {RESTART_S})")
    assert int(service.show("NRestarts")) == restarts + 1
    systemd = container.run(
        ["journalctl", "--no-pager", "-o", "cat", f"--after-cursor={cursor}", "_PID=1"]
    ).stdout
    assert "Watchdog timeout" in systemd, systemd
    # SIGABRT made Python print where the owner loop was: the journal says where it hung.
    traces = [e["MESSAGE"] for e in service.journal(f"_PID={pid}")]
    assert "Fatal Python error: Aborted" in traces
    assert any("in _loop" in line for line in traces), traces


def test_a_registrar_unreachable_past_the_grace_gets_the_agent_restarted(
    container, service, registrar
):
    pid = service.main_pid()
    restarts = int(service.show("NRestarts"))
    cursor = service.cursor()
    registrar.stop()
    stopped = time.monotonic()
    try:
        service.wait_log("registration failed", 40, since_cursor=cursor)
        failed = time.monotonic()
        sick = service.wait_log("unhealthy: registration failing", GRACE_S + 20, cursor)
        assert sick["PRIORITY"] == "3"
        wait_until(
            lambda: int(service.show("NRestarts")) > restarts,
            WATCHDOG_S + RESTART_S + 20,
            f"a restart after the grace\n{service.journal_text()}",
            0.1,
        )
        print(
            f"registrar stopped -> registration failed {failed - stopped:.1f} s -> "
            f"restarted {time.monotonic() - failed:.1f} s later "
            f"(grace {GRACE_S} + WatchdogSec {WATCHDOG_S} + RestartSec {RESTART_S})"
        )
        # The new process cannot register: it is started but not yet active (no READY=1).
        wait_until(lambda: service.main_pid() not in (0, pid), 20, "the new process", 0.1)
        assert service.state() == "activating"
    finally:
        registrar.start()
    new_pid = service.wait_active(60)
    assert new_pid != pid


def _memory(container: Container, pid: int) -> dict[str, int]:
    """The service's VmRSS and VmData (bytes), read inside the container."""
    status = container.run(["cat", f"/proc/{pid}/status"], check=False).stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmData") if k in fields}


def _use_transport(container: Container, service: Service, transport: str) -> int:
    config = container.path("/etc/sipagent/agent.toml")
    text = re.sub(r'transport = "\w+"', f'transport = "{transport}"', config.read_text(), count=1)
    config.write_text(text)
    container.run(["systemctl", "restart", "sipagent"], timeout=90)
    return service.wait_active(60)


def test_a_flood_stays_under_the_units_memory_bound_and_a_killed_agent_is_restarted(
    container, service, registrar, tmp_path
):
    # The bound: MemoryMax= where the kernel has a memory cgroup, and an rlimit the kernel
    # enforces everywhere (Raspberry Pi OS disables the memory cgroup; so does this host).
    memory_max = int(service.show("MemoryMax"))
    limit_data = int(service.show("LimitDATA"))
    assert memory_max < limit_data < 2**40, (memory_max, limit_data)
    # UDP: completed transactions linger (Timer J), which is what a flood makes grow.
    pid = _use_transport(container, service, "udp")
    try:
        limits = container.run(["cat", f"/proc/{pid}/limits"]).stdout
        assert re.search(rf"Max data size\s+{limit_data}\s+{limit_data}\s+bytes", limits), limits
        peak = {"VmRSS": 0, "VmData": 0}
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                for key, value in _memory(container, pid).items():
                    peak[key] = max(peak[key], value)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            flood = sipp_flood(registrar, "agent", rate=2000, seconds=10, workdir=tmp_path)
        finally:
            done.set()
            sampler.join(10)
        print(
            f"2000/s for 10 s through Kamailio: {flood.answered} of {flood.sent} answered; "
            f"peak RSS {peak['VmRSS'] >> 20} MB (MemoryMax {memory_max >> 20} MB), peak data "
            f"{peak['VmData'] >> 20} MB (LimitDATA {limit_data >> 20} MB)"
        )
        assert flood.answered > flood.sent // 2, flood  # the flood reached the agent
        assert service.main_pid() == pid and service.state() == "active"
        assert 0 < peak["VmRSS"] < memory_max and 0 < peak["VmData"] < limit_data
        # Past the bound the kernel kills it (SIGKILL, from the OOM killer) or an allocation
        # fails and it exits: either way systemd starts it again.
        restarts = int(service.show("NRestarts"))
        container.run(["systemctl", "kill", "--kill-whom=main", "--signal=SIGKILL", "sipagent"])
        wait_until(
            lambda: service.main_pid() not in (0, pid) and service.state() == "active",
            RESTART_S + 60,
            f"sipagent restarted after SIGKILL\n{service.journal_text()}",
            0.1,
        )
        assert int(service.show("NRestarts")) == restarts + 1
    finally:
        _use_transport(container, service, "tcp")


def test_a_second_install_keeps_the_edited_config_and_the_running_service(container, service):
    config = container.path("/etc/sipagent/agent.toml")
    edited = config.read_text() + "# edited by the owner\n"
    config.write_text(edited)
    pid = service.main_pid()
    result = container.run([f"{SRC}/scripts/install.sh"], timeout=INSTALL_TIMEOUT)
    assert "kept the existing /etc/sipagent/agent.toml" in result.stdout
    assert config.read_text() == edited
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    assert oct(config.parent.stat().st_mode & 0o777) == "0o750"
    owner_group = container.run(["stat", "-c", "%U:%G", "/etc/sipagent/agent.toml"]).stdout.strip()
    assert owner_group == "root:sipagent"
    assert "restarting" not in result.stdout and service.main_pid() == pid


def test_uninstall_removes_the_unit_and_keeps_config_unless_purged(container, installed):
    result = container.run([f"{SRC}/scripts/uninstall.sh"])
    assert "removed /etc/systemd/system/sipagent.service" in result.stdout
    gone = container.run(["systemctl", "cat", "sipagent.service"], check=False)
    assert gone.returncode != 0
    assert not container.path("/opt/sipagent").exists()
    assert container.path("/etc/sipagent/agent.toml").exists()
    container.run([f"{SRC}/scripts/uninstall.sh", "--purge"])
    assert not container.path("/etc/sipagent").exists()
    assert container.run(["getent", "passwd", "sipagent"], check=False).returncode == 2


# -- without a binding: a fresh container of its own -----------------------------------------


def _changed_files(upper: Path) -> set[str]:
    """Files the container changed (its overlay's upper layer), less logs and caches."""
    skip = ("var/log/", "var/cache/", "var/lib/systemd/", "root/", "tmp/", "var/tmp/")
    return {
        str(p.relative_to(upper))
        for p in upper.rglob("*")
        if not str(p.relative_to(upper)).startswith(skip)
    }


def test_without_a_binding_the_installer_stops_before_changing_anything_and_takes_a_wheel(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
):
    wheel_dir = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "-d",
            str(wheel_dir),
            "pjsua2-python",
        ],
        check=True,
        capture_output=True,  # pip warns about this host's local indexes
        timeout=300,
    )
    [wheel] = wheel_dir.glob("pjsua2_python-*.whl")
    with Container(tmp_path / "fresh", name="sipagent-fresh") as c:
        c.copy_in(REPO, SRC, ignore=COPY_IGNORE)
        c.copy_in(wheel_dir, "/root/wheels")
        before = _changed_files(c.workdir / "upper")
        # SIPAGENT_ARCH is install.sh's documented override, for this test.
        env = {"SIPAGENT_ARCH": "aarch64"}
        refused = c.run([f"{SRC}/scripts/install.sh"], env=env, check=False)
        assert refused.returncode == 2
        message = refused.stderr
        assert "no pjsua2 Python binding for aarch64: nothing was changed" in message
        assert "x86_64 Linux only" in message
        assert "--binding /path/to/pjsua2-" in message
        assert "pjsip documents how to build its Python binding" in message
        assert _changed_files(c.workdir / "upper") == before
        assert c.run(["getent", "passwd", "sipagent"], check=False).returncode == 2
        # A wheel passed to it is checked by importing it, still changing nothing.
        checked = c.run(
            [f"{SRC}/scripts/install.sh", "--check", "--binding", f"/root/wheels/{wheel.name}"],
            env=env,
        )
        assert "pjproject 2.15.1, deferred MESSAGE responses: no" in checked.stdout
        assert _changed_files(c.workdir / "upper") == before
        # And installs from it. With the example config untouched, nothing is started.
        done = c.run(
            [f"{SRC}/scripts/install.sh", "--binding", f"/root/wheels/{wheel.name}"],
            env=env,
            timeout=INSTALL_TIMEOUT,
        )
        assert f"pjsua2 binding: wheel /root/wheels/{wheel.name}" in done.stdout
        assert "not started: /etc/sipagent/agent.toml is still the example" in done.stdout
        assert c.run(["systemctl", "is-enabled", "sipagent"]).stdout.strip() == "enabled"
        assert c.run(["systemctl", "is-active", "sipagent"], check=False).stdout.strip() == (
            "inactive"
        )
        c.run(["/opt/sipagent/bin/python", "-c", "import pjsua2"])
