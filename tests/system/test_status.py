"""`sipagent status`: the running agent answers over a unix socket in its runtime directory.

End to end against a real agent (registered at Kamailio, connected to Mosquitto), and the
server's bounds against hostile local clients: a wrong uid, a request too long, a client that
sends nothing, an owner loop that does not answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from agent.adapters import status_socket
from agent.adapters.status_socket import StatusServer, StatusUnavailable, ask
from agent.core.events import Event, StatusRequested
from agent.core.status_report import render
from lab.configs import DOOR_CONFIG, agent_toml
from lab.waiting import wait_until


def sipagent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=60
    )


def test_status_shows_the_running_agent(kamailio, mosquitto, agent_factory, device_id):
    config = agent_toml(kamailio, mosquitto=mosquitto, device_id=device_id, extra=DOOR_CONFIG)
    agent = agent_factory(config)
    agent.wait_ready()
    wait_until(lambda: agent.status_socket.exists(), 10, "the status socket")
    mode = agent.status_socket.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    agent.drive(27, False)  # pulled up: low is active, "open"

    def answered() -> dict | None:
        result = sipagent("status", "--json", "--socket", str(agent.status_socket))
        assert result.returncode == 0, result.stderr
        status = json.loads(result.stdout)
        mqtt_ok = status["mqtt"] and status["mqtt"]["connected"]
        return status if mqtt_ok and status["inputs"]["door"]["active"] else None

    status = wait_until(answered, 20, "a status with MQTT connected and the door open")
    assert status["registration"]["state"] == "registered"
    assert status["public_address"] == status["registration"]["public"]
    assert status["mqtt"]["broker"] == f"{mosquitto.host}:{mosquitto.port}"
    assert status["outputs"] == {
        "lamp": {"on": False, "level": None, "running": None},
        "gate": {"on": False, "level": None, "running": None},
    }
    assert status["presence"] == {"status": "busy", "note": "door open", "mode": "off"}
    assert status["outbox"]["capacity"] == 10000
    assert status["diagnostics"]["pjproject"].startswith("2.")
    text = sipagent("status", "--socket", str(agent.status_socket))
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert lines[0].startswith("sipagent ") and f"device {device_id}" in lines[0]
    assert "registration:  registered (200 OK)" in lines
    assert f"MQTT:          connected to {mosquitto.host}:{mosquitto.port}" in lines
    assert "inputs:        door open" in lines
    assert "presence:      busy — door open (off)" in lines
    assert any(line.startswith("outbox:        ") for line in lines)
    assert "refused:       0" in lines and "limited:       0" in lines


def test_status_without_a_running_agent_says_so(tmp_path: Path):
    result = sipagent("status", "--socket", str(tmp_path / "status.sock"))
    assert result.returncode == 1
    assert "no running sipagent" in result.stderr


# -- the server's bounds, with the owner loop played by the test ------------------------------


class _Owner:
    """Answers StatusRequested like the owner loop, or not at all (a hung loop)."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.requests = 0

    def post(self, event: Event) -> None:
        assert isinstance(event, StatusRequested)
        self.requests += 1
        if self.answer:
            event.reply.set_result({"device": "porch", "requests": self.requests})


@pytest.fixture
def server(tmp_path: Path):
    servers: list[StatusServer] = []

    def start(owner: _Owner) -> StatusServer:
        server = StatusServer(str(tmp_path / "run" / "status.sock"), owner.post)
        assert server.start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.close()


def _raw(path: str, payload: bytes, *, close_write: bool = True) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(path)
        s.sendall(payload)
        if close_write:
            s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


def test_the_socket_is_private_from_the_moment_it_exists(server, tmp_path: Path):
    s = server(_Owner())
    assert stat.S_IMODE(os.stat(s.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "run").st_mode) == 0o700
    assert ask([s.path]) == {"device": "porch", "requests": 1}


def test_a_client_of_another_uid_is_refused_even_if_the_mode_is_loosened():
    # Outside pytest's private tmp directory (0700), so that `nobody` can reach the socket.
    s = StatusServer(
        os.path.join(tempfile.mkdtemp(prefix="sipagent-status-"), "s.sock"), _Owner().post
    )
    assert s.start()
    os.chmod(os.path.dirname(s.path), 0o755)
    os.chmod(s.path, 0o666)  # someone loosened it: SO_PEERCRED still keeps others out
    client = (
        "import socket,sys\ns=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
        "try:\n s.sendall(b'status\\n'); print(repr(s.recv(100)))\n"
        "except (BrokenPipeError, ConnectionResetError): print(repr(b''))"
    )
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
         client, s.path],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    try:
        assert result.stdout.strip() == "b''"  # closed without a word
        wait_until(lambda: s.refused == 1, 10, "the refusal counted")
    finally:
        s.close()
        os.rmdir(os.path.dirname(s.path))


def test_requests_are_bounded_and_only_status_is_understood(server):
    owner = _Owner()
    s = server(owner)
    too_long = _raw(s.path, b"x" * (status_socket.MAX_REQUEST_BYTES + 1))
    assert b"too long, too slow or not one line" in too_long
    # The rest is never read: the server closes, and the kernel may reset the connection.
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        _raw(s.path, b"x" * 1_000_000)
    wait_until(lambda: s.bad == 2, 10, "both long requests counted")
    unknown = json.loads(_raw(s.path, b"reload\n"))
    assert unknown["error"].startswith("unknown request 'reload'")
    assert owner.requests == 0  # none reached the owner loop
    assert s.bad == 3
    assert json.loads(_raw(s.path, b"STATUS\n"))["requests"] == 1


def test_a_client_that_sends_nothing_is_dropped_and_others_are_served(server):
    s = server(_Owner())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.connect(s.path)  # says nothing; the server drops it after CLIENT_TIMEOUT_S
        result: dict[str, object] = {}
        thread = threading.Thread(target=lambda: result.update(ask([s.path], timeout_s=30)))
        thread.start()
        thread.join(60)
        assert result.get("device") == "porch"
        silent.settimeout(30)
        assert silent.recv(1000).startswith(b'{"error": "unknown request too long')


def test_a_hung_owner_loop_gets_a_clear_answer_not_a_hung_client(server, monkeypatch):
    monkeypatch.setattr(status_socket, "ANSWER_TIMEOUT_S", 0.2)
    s = server(_Owner(answer=False))
    with pytest.raises(StatusUnavailable, match=r"did not answer within 0\.2 s"):
        ask([s.path])


def test_a_second_agent_does_not_steal_a_live_socket_but_takes_a_stale_one(server, tmp_path):
    first = server(_Owner())
    second = StatusServer(first.path, _Owner().post)
    assert not second.start()  # another agent answers there
    first.close()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(first.path)  # left behind by a crash: nobody listens
    stale.close()
    third = StatusServer(first.path, _Owner().post)
    assert third.start()
    third.close()


def test_the_status_renders_counters_by_fate():
    status = {
        "version": "1", "device": "porch", "uptime_s": 75, "config": "/etc/sipagent/agent.toml",
        "registration": {"state": "failed", "code": 408, "reason": "Request Timeout",
                         "retry_in": 4.2, "attempt": 3},
        "public_address": None, "mqtt": None, "outputs": {}, "inputs": {},
        "counters": {"sip.message.refused": 2, "mqtt.payload.dropped": 1,
                     "dispatch.command.limited": 5, "status.client.refused": 1},
        "reload": {"at": "2026-12-01T00:00:00+00:00", "ok": True, "applied": ["access.allow"],
                   "needs_restart": ["sip.listen"], "problems": []},
    }  # fmt: skip
    lines = render(status)
    assert "registration:  failed (408 Request Timeout), retry 3 in 4.2s" in lines
    assert "MQTT:          off" in lines
    assert "refused:       3 (sip.message.refused 2, status.client.refused 1)" in lines
    assert "dropped:       1 (mqtt.payload.dropped 1)" in lines
    assert "limited:       5 (dispatch.command.limited 5)" in lines
    assert "last reload:   2026-12-01T00:00:00+00:00 applied access.allow" in lines
    assert "  not applied until a restart: sip.listen" in lines
