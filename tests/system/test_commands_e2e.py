"""The command language end to end: a peer's MESSAGEs through Kamailio, mock pins, replies.

Pulse and blink are observed as pin changes with deadlines; durations are never asserted.
"""

from __future__ import annotations

import base64
import json
import socket
import time

from agent.core.totp import totp
from lab.configs import agent_toml
from lab.ports import free_port
from lab.rawsip import raw_message
from lab.waiting import wait_until

LAMP, GATE, DIMMER = 17, 18, 12
OUTPUTS = {"lamp": LAMP, "gate": GATE, "dimmer": DIMMER}
KEY = b"sipagent-test-key-20"
SECRET = base64.b32encode(KEY).decode()


def _pin_becomes(agent, pin: int, state: bool, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    wait_until(lambda: agent.pin(pin) is state, timeout, f"pin {pin} {'on' if state else 'off'}")


def _ask(peer, to: str, body: str, content_type: str = "text/plain") -> str:  # type: ignore[no-untyped-def]
    peer.send(to, body, content_type)
    return str(peer.wait_message()["body"])


def test_every_command_from_the_owner(kamailio, agent_factory, peer_factory):
    agent = agent_factory(
        agent_toml(
            kamailio,
            outputs=OUTPUTS,
            output_extra={"dimmer": "pwm = true\nlevel_min = 10", "gate": 'max_pulse = "30s"'},
            access_extra="rate_burst = 100",  # the test polls status
        )
    )
    agent.wait_ready()
    owner = peer_factory("owner")
    to = kamailio.aor("agent")

    assert "blink <output>" in _ask(owner, to, "help")
    assert _ask(owner, to, "on lamp") == "ok: lamp on"
    assert agent.pin(LAMP) is True
    assert _ask(owner, to, "off lamp") == "ok: lamp off"
    assert _ask(owner, to, "toggle LAMP") == "ok: lamp on"
    assert agent.pin(LAMP) is True

    assert _ask(owner, to, "pulse gate 300ms") == "ok: gate pulsed 300ms"
    _pin_becomes(agent, GATE, False)  # it came back off by itself...
    (_, on), (held, off) = agent.pin_history(GATE)[-2:]
    assert (on, off) == (1.0, 0.0)
    assert held >= 0.3  # ...and not before its time (a lower bound, never a speed)

    before = len(agent.pin_history(LAMP))
    assert _ask(owner, to, "blink lamp 100ms 100ms 2") == "ok: lamp blinking 100ms/100ms 2 times"
    wait_until(lambda: "blink" not in _ask(owner, to, "status"), 10, "blink to end")
    # The lamp was on already, so the blink's first "on" changes nothing: off, on, off.
    assert [level for _, level in agent.pin_history(LAMP)[before:]] == [0.0, 1.0, 0.0]
    assert agent.pin(LAMP) is False

    assert _ask(owner, to, "set dimmer 40%") == "ok: dimmer at 40%"
    assert abs(agent.pin_value(DIMMER) - 0.4) < 1e-6
    assert _ask(owner, to, "set dimmer 5%") == (
        "error: level 5% is out of range for dimmer (0% or 10..100%)"
    )
    assert _ask(owner, to, "set lamp 50%") == (
        "error: 'lamp' is not a PWM output (PWM outputs: dimmer)"
    )
    assert _ask(owner, to, "pulse gate 2m") == "error: pulse 120s is out of range 10ms..30s"
    assert _ask(owner, to, "presence busy In the garden") == "ok: presence busy — In the garden"
    status = _ask(owner, to, "status")
    assert status.startswith("ok: outputs: lamp off, gate off, dimmer 40%"), status

    json_body = json.dumps({"command": "pulse", "target": "gate", "duration": "30s"})
    assert _ask(owner, to, json_body, "application/json") == "ok: gate pulsed 30s"
    assert agent.pin(GATE) is True
    assert "gate on (pulse 30s)" in _ask(owner, to, "status")
    # A new command cancels the running pulse at once.
    assert _ask(owner, to, "off gate") == "ok: gate off"
    assert agent.pin(GATE) is False
    assert "gate off," in _ask(owner, to, "status")
    owner.assert_no_event("message", within=0.3)  # exactly one reply each


def test_rights_per_user_over_sip_and_mqtt(
    kamailio, mosquitto, agent_factory, peer_factory, probe_factory, device_id
):
    B = f"sipagent/{device_id}"
    limited = kamailio.aor("watcher1")
    extra = (
        f'[access.users."{limited}"]\ncommands = ["on", "off"]\noutputs = ["lamp"]\n'
        '[access.users."mqtt:local"]\noutputs = ["lamp"]\n'
    )
    agent = agent_factory(
        agent_toml(kamailio, mosquitto=mosquitto, device_id=device_id, outputs=OUTPUTS, extra=extra)
    )
    agent.wait_ready()
    probe = probe_factory(f"{B}/#")
    probe.wait_for(f"{B}/availability", lambda m: m.payload == b"online", consume=False)
    watcher = peer_factory("watcher1")
    to = kamailio.aor("agent")
    assert _ask(watcher, to, "on lamp") == "ok: lamp on"
    assert _ask(watcher, to, "on gate") == (
        "error: output 'gate' is not allowed for you (your outputs: lamp)"
    )
    assert _ask(watcher, to, "pulse lamp").startswith("error: 'pulse' is not allowed for you")
    help_reply = _ask(watcher, to, "help")
    assert "on <output>" in help_reply and "pulse" not in help_reply
    assert agent.pin(GATE) is False

    probe.publish(f"{B}/command", "on gate")
    result = json.loads(probe.wait_for(f"{B}/command/result").payload)
    assert result["result"] == "error: output 'gate' is not allowed for you (your outputs: lamp)"
    probe.publish(f"{B}/command", "off lamp")
    assert json.loads(probe.wait_for(f"{B}/command/result").payload)["ok"] is True
    assert agent.pin(LAMP) is False
    assert agent.pin(GATE) is False


def test_a_one_time_code_opens_the_gate_once(
    kamailio, mosquitto, agent_factory, peer_factory, probe_factory, device_id
):
    B = f"sipagent/{device_id}"
    owner_aor = kamailio.aor("owner")
    agent = agent_factory(
        agent_toml(
            kamailio,
            mosquitto=mosquitto,
            device_id=device_id,
            allow=(),
            access_extra='require_code = ["gate"]',
            extra=f'[access.users."{owner_aor}"]\ntotp_secret = "{SECRET}"\n',
        )
    )
    agent.wait_ready()
    probe = probe_factory(f"{B}/message/in")
    owner = peer_factory("owner")
    to = kamailio.aor("agent")
    assert (
        _ask(owner, to, "on gate") == "error: 'gate' needs a one-time code: send '<code> on gate'"
    )
    code = totp(KEY, time.time())
    assert _ask(owner, to, f"{code} on gate") == "ok: gate on"
    assert agent.pin(GATE) is True
    assert (
        _ask(owner, to, "off gate") == "error: 'gate' needs a one-time code: send '<code> off gate'"
    )
    assert _ask(owner, to, f"{code} off gate") == (
        "error: one-time code not accepted (wrong, expired or already used)"
    )
    assert agent.pin(GATE) is True  # the replayed code moved nothing
    assert _ask(owner, to, "on lamp") == "ok: lamp on"  # unprotected outputs need no code
    replay = probe.wait_for(
        f"{B}/message/in",
        lambda m: (
            json.loads(m.payload)["body"].endswith("off gate") and "already" in m.payload.decode()
        ),
    )
    assert json.loads(replay.payload)["authorized"] is False


def test_a_forged_from_in_direct_mode_cannot_move_a_protected_output(agent_factory, peer_factory):
    # Direct mode: no proxy checks who sends, so anyone may claim to be the owner.
    port = free_port()
    agent = agent_factory(
        agent_toml(
            None,
            listen=f"127.0.0.1:{port}",
            access_extra='require_code = ["gate"]',
            extra=f'[access.users."sip:boss@127.0.0.1"]\ntotp_secret = "{SECRET}"\n',
        )
    )
    agent.wait_ready()
    to = f"sip:agent@127.0.0.1:{port}"
    forger = peer_factory(uri="sip:boss@127.0.0.1")  # a stranger with the boss's From
    # Nobody vouches for a From here: a refusal says no more than a stranger's would.
    assert _ask(forger, to, "on gate") == "error: forbidden"
    assert _ask(forger, to, "123456 on gate") == "error: forbidden"
    assert agent.pin(GATE) is False
    # What the code protects against: an unprotected output obeys a forged From.
    assert _ask(forger, to, "on lamp") == "ok: lamp on"


def test_the_rate_limit_bites(kamailio, agent_factory, peer_factory):
    agent = agent_factory(agent_toml(kamailio, access_extra="rate_per_minute = 1\nrate_burst = 3"))
    agent.wait_ready()
    owner = peer_factory("owner")
    to = kamailio.aor("agent")
    for _ in range(5):
        owner.send(to, "toggle lamp")
    # Kamailio's two workers may swap replies sent within microseconds: compare as a set.
    replies = sorted(owner.wait_message()["body"] for _ in range(4))
    assert replies[0].startswith("error: too many commands; try again in ")
    assert replies[1:] == ["ok: lamp off", "ok: lamp on", "ok: lamp on"]
    owner.assert_no_event("message", within=0.5)  # the fifth is dropped silently
    assert agent.pin(LAMP) is True
    assert "rate limit" in agent.log.read_text()


def test_a_call_from_the_owner_pulses_the_gate_and_is_rejected(
    kamailio, mosquitto, agent_factory, peer_factory, probe_factory, device_id
):
    B = f"sipagent/{device_id}"
    agent = agent_factory(
        agent_toml(
            kamailio,
            mosquitto=mosquitto,
            device_id=device_id,
            output_extra={"gate": 'max_pulse = "30s"'},
            extra='[calls]\naction = "pulse gate 20s"\n',
        )
    )
    agent.wait_ready()
    probe = probe_factory(f"{B}/call/in")
    owner, eve = peer_factory("owner"), peer_factory("eve")
    ended = owner.wait_call_ended(owner.call(kamailio.aor("agent")))
    assert ended["code"] == 603
    assert agent.pin(GATE) is True  # on for 20 s: no race with the check
    record = json.loads(probe.wait_for(f"{B}/call/in").payload)
    assert record["from"] == kamailio.aor("owner")
    assert record["authorized"] is True and record["code"] == 603
    assert record["action"] == {"name": "pulse", "target": "gate", "result": "ok: gate pulsed 20s"}

    owner.send(kamailio.aor("agent"), "off gate")
    assert owner.wait_message()["body"] == "ok: gate off"
    assert eve.wait_call_ended(eve.call(kamailio.aor("agent")))["code"] == 603
    stranger = json.loads(probe.wait_for(f"{B}/call/in").payload)
    assert stranger["authorized"] is False and stranger["action"] is None
    assert agent.pin(GATE) is False


def test_bodies_that_are_not_utf8_or_carry_control_characters_are_answered(
    mosquitto, agent_factory, peer_factory, probe_factory, device_id
):
    B = f"sipagent/{device_id}"
    probe = probe_factory(f"{B}/message/in")
    port = free_port()
    agent = agent_factory(
        agent_toml(None, listen=f"127.0.0.1:{port}", mosquitto=mosquitto, device_id=device_id)
    )
    agent.wait_ready()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        for body, reply in [
            (b"on lamp \xff\xfe", b"error: the message is not UTF-8 text"),
            (b"on\x07 lamp", b"error: the message contains a control character (U+0007)"),
        ]:
            raw_message(port, sock, body)
            got = b""
            while reply not in got:  # the 200 to our request, then the agent's reply MESSAGE
                got = sock.recv(65536)
                if got.startswith(b"MESSAGE"):
                    assert reply in got, got
    owner = peer_factory(uri="sip:owner@127.0.0.1")
    assert _ask(owner, f"sip:agent@127.0.0.1:{port}", "status").startswith("ok: ")
    assert agent.pin(LAMP) is False
    # Both are relayed too: the bytes that are not UTF-8 as U+FFFD.
    first = json.loads(probe.wait_for(f"{B}/message/in").payload)
    assert first["body"] == "on lamp \ufffd\ufffd"
    assert first["command"]["result"] == "error: the message is not UTF-8 text"
    assert json.loads(probe.wait_for(f"{B}/message/in").payload)["body"] == "on\x07 lamp"


def test_shutdown_cancels_pulse_and_blink_and_leaves_the_safe_state(
    kamailio, agent_factory, peer_factory
):
    agent = agent_factory(
        agent_toml(
            kamailio,
            outputs=OUTPUTS,
            output_extra={
                "gate": 'max_pulse = "60s"',
                "dimmer": 'initial = "on"\nsafe = "off"\npwm = true',
            },
        )
    )
    agent.wait_ready()
    assert agent.pin_value(DIMMER) == 1.0  # initial
    owner = peer_factory("owner")
    to = kamailio.aor("agent")
    assert _ask(owner, to, "pulse gate 60s") == "ok: gate pulsed 60s"
    assert _ask(owner, to, "blink lamp") == "ok: lamp blinking 500ms/500ms"
    agent.terminate()
    report = agent.wait_exit()
    assert report["code"] == 0
    assert report["pins"]["GPIO18"] is False  # the gate's pulse did not outlive the agent
    assert report["pins"]["GPIO17"] is False
    assert report["pins"]["GPIO12"] is False  # safe = off, although initial = on
