"""The command line as a person uses it: check-config, version, run refusing a bad config, send."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agent import __version__
from lab.configs import agent_toml
from lab.ports import free_port
from lab.waiting import wait_until


def sipagent(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=timeout
    )


def test_version():
    result = sipagent("version")
    assert (result.returncode, result.stdout.strip()) == (0, f"sipagent {__version__}")


def test_check_config_accepts_a_good_file(tmp_path: Path):
    path = tmp_path / "agent.toml"
    path.write_text(agent_toml())
    result = sipagent("check-config", str(path))
    assert result.returncode == 0, result.stdout


def test_check_config_names_every_bad_key(tmp_path: Path):
    path = tmp_path / "agent.toml"
    path.write_text(
        '[device]\nid = "Porch!"\n[sip]\nuri = "sip:porch@pbx.example.org"\n'
        'registrar = "pbx.example.org"\ntransport = "carrier-pigeon"\n'
    )
    result = sipagent("check-config", str(path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "sip.registrar: not a SIP URI: 'pbx.example.org'" in lines
    assert any(line.startswith("device.id:") for line in lines)
    assert any(line.startswith("sip.transport:") for line in lines)


def test_run_refuses_a_bad_config_before_touching_the_network(tmp_path: Path):
    port = free_port()
    path = tmp_path / "agent.toml"
    path.write_text(agent_toml(listen=f"127.0.0.1:{port}").replace('"GPIO17"', '"GPIO99"'))
    result = sipagent("run", "--config", str(path))
    assert result.returncode == 1
    assert "gpio.outputs.lamp.pin: unknown pin 'GPIO99'" in result.stderr
    assert "SIP account" not in result.stderr


def test_send_talks_to_a_running_agent_and_prints_the_reply(agent_factory):
    """The newcomer's second terminal: `sipagent send TO TEXT` against a direct-mode agent."""
    port = free_port()
    agent = agent_factory(agent_toml(listen=f"127.0.0.1:{port}"))
    agent.wait_ready()
    result = sipagent(
        "send", "--from", "sip:owner@127.0.0.1", f"sip:agent@127.0.0.1:{port}", "on lamp"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sent: 200 OK" in result.stdout
    assert "ok: lamp on" in result.stdout
    assert agent.pin(17) is True


def _send_via_registrar(kamailio, *auth: str, env: dict[str, str] | None = None):
    """`sipagent send` through the registrar; (its /proc/<pid>/cmdline, the finished run)."""
    argv = [sys.executable, "-m", "agent", "send", "--from", kamailio.aor("owner")]
    argv += ["--registrar", kamailio.registrar_uri, *auth, kamailio.aor("agent"), "status"]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    # What `ps` shows every user. Right after execve the kernel has not yet laid out the new
    # arguments (the file reads empty for a moment): wait until it has.
    cmdline = wait_until(
        lambda: Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(), 10, "the cmdline", 0.001
    )
    out, err = proc.communicate(timeout=60)
    return cmdline, subprocess.CompletedProcess(argv, proc.returncode, out, err)


def test_send_through_a_registrar_takes_the_password_from_a_file(
    kamailio, agent_factory, tmp_path: Path
):
    agent = agent_factory(agent_toml(kamailio))
    agent.wait_ready()
    secret = tmp_path / "owner-password"
    secret.write_text(kamailio.users["owner"] + "\n")
    secret.chmod(0o600)
    cmdline, result = _send_via_registrar(kamailio, "--password-file", str(secret))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: outputs: lamp off, gate off; SIP registered" in result.stdout
    assert "--password-file" in cmdline  # it is that process's command line ...
    assert kamailio.users["owner"] not in cmdline  # ... and the password is not in it


def test_send_through_a_registrar_takes_the_password_from_the_environment(kamailio, agent_factory):
    agent = agent_factory(agent_toml(kamailio))
    agent.wait_ready()
    password = kamailio.users["owner"]
    cmdline, result = _send_via_registrar(kamailio, env={"SIPAGENT_PASSWORD": password})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: outputs: lamp off, gate off; SIP registered" in result.stdout
    assert "--registrar" in cmdline and password not in cmdline


def test_send_refuses_a_password_on_the_command_line(kamailio):
    result = sipagent(
        "send", "--registrar", kamailio.registrar_uri, "--password", "hunter2", "sip:a@b", "hi"
    )
    assert result.returncode == 1
    assert "--password would show the password to every user" in result.stdout
    assert "--password-file FILE or the environment variable SIPAGENT_PASSWORD" in result.stdout


def test_a_wrong_password_file_is_refused_before_anything_is_sent(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.write_text("")
    for path, why in ((tmp_path / "missing", "No such file"), (empty, "empty")):
        result = sipagent("send", "--password-file", str(path), "sip:a@127.0.0.1", "hi")
        assert result.returncode == 1 and why in result.stdout, result.stdout
