"""The whole agent end to end: Kamailio, Mosquitto, a peer UA in its own process, mock pins."""

from __future__ import annotations

import json

from lab.configs import agent_toml

LAMP, GATE = 17, 18


def _json(message) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(message.payload)


def _wait_online(probe, base: str) -> None:  # type: ignore[no-untyped-def]
    """The agent announces `online` after subscribing: from then on it hears commands."""
    probe.wait_for(f"{base}/availability", lambda m: m.payload == b"online", consume=False)


def test_registers_with_right_password_and_says_so_on_mqtt(
    kamailio, mosquitto, agent_factory, probe_factory, device_id
):
    B = f"sipagent/{device_id}"
    probe = probe_factory(f"{B}/#")
    agent = agent_factory(agent_toml(kamailio, device_id=device_id, mosquitto=mosquitto))
    agent.wait_ready()
    reg = probe.wait_for(f"{B}/registration", lambda m: _json(m)["state"] == "registered")
    assert _json(reg)["code"] == 200
    assert _json(reg)["expires"] > 0
    late = probe_factory(f"{B}/registration").wait_for(f"{B}/registration")
    assert late.retain and _json(late)["state"] == "registered"
    assert probe.wait_for(f"{B}/availability").payload == b"online"
    assert any("SIP registered" in s for s in agent.notify.statuses())


def test_wrong_password_is_reported_and_never_ready(
    kamailio, mosquitto, agent_factory, probe_factory, device_id
):
    B = f"sipagent/{device_id}"
    probe = probe_factory(f"{B}/registration")
    agent = agent_factory(
        agent_toml(kamailio, device_id=device_id, mosquitto=mosquitto, password="wrong")
    )
    failed = probe.wait_for(
        f"{B}/registration", lambda m: _json(m)["state"] == "failed", timeout=15
    )
    assert _json(failed)["code"] in (401, 403, 407)
    assert agent.notify.times("READY") == []
    assert "registration failed" in agent.log.read_text()


def test_owner_command_switches_the_pin_and_gets_ok(kamailio, agent_factory, peer_factory):
    agent = agent_factory(agent_toml(kamailio))
    agent.wait_ready()
    owner = peer_factory("owner")
    assert agent.pin(LAMP) is False
    owner.send(kamailio.aor("agent"), "on lamp")
    reply = owner.wait_message()
    assert reply["body"] == "ok: lamp on"
    assert agent.pin(LAMP) is True
    owner.send(kamailio.aor("agent"), "  TOGGLE   Lamp ")
    assert owner.wait_message()["body"] == "ok: lamp off"
    assert agent.pin(LAMP) is False


def test_stranger_is_refused_and_the_pin_stays(kamailio, agent_factory, peer_factory):
    agent = agent_factory(agent_toml(kamailio))
    agent.wait_ready()
    eve = peer_factory("eve")
    eve.send(kamailio.aor("agent"), "on gate")
    assert eve.wait_message()["body"] == "error: forbidden"
    assert agent.pin(GATE) is False


def test_commands_work_over_tcp(kamailio, agent_factory, peer_factory):
    agent = agent_factory(agent_toml(kamailio, transport="tcp"))
    agent.wait_ready()
    owner = peer_factory("owner", transport="tcp")
    owner.send(kamailio.aor("agent"), "on gate")
    assert owner.wait_message()["body"] == "ok: gate on"
    assert agent.pin(GATE) is True


def test_help_status_and_errors_get_exactly_one_reply_each(kamailio, agent_factory, peer_factory):
    agent = agent_factory(agent_toml(kamailio))
    agent.wait_ready()
    owner = peer_factory("owner")
    to = kamailio.aor("agent")
    expected = {
        "help": "ok: commands: help",
        "status": "ok: outputs: lamp off, gate off; SIP registered",
        "on gat": "error: unknown output 'gat' (outputs: lamp, gate)",
        "open sesame": "error: unknown command 'open'",
    }
    for body in expected:
        owner.send(to, body)
    replies = [owner.wait_message()["body"] for _ in expected]
    for body, reply in zip(expected.values(), replies, strict=True):
        assert reply.startswith(body), (body, reply)
    owner.assert_no_event("message", within=0.5)


def test_every_message_reaches_mqtt_with_who_and_what(
    kamailio, mosquitto, agent_factory, probe_factory, device_id, peer_factory
):
    B = f"sipagent/{device_id}"
    probe = probe_factory(f"{B}/message/in")
    agent = agent_factory(agent_toml(kamailio, device_id=device_id, mosquitto=mosquitto))
    agent.wait_ready()
    owner, eve = peer_factory("owner"), peer_factory("eve")
    to = kamailio.aor("agent")
    owner.send(to, "on lamp")
    eve.send(to, "off lamp")
    owner.send(to, "ok: thanks")  # looks like a reply: relayed, never answered
    records = [
        _json(probe.wait_for(f"{B}/message/in", lambda m, b=b: _json(m)["body"] == b))
        for b in ("on lamp", "off lamp", "ok: thanks")
    ]
    cmd, refused, chat = records
    assert cmd["from"].endswith("sip:owner@sipagent.test>") or "owner@sipagent.test" in cmd["from"]
    assert cmd["authorized"] is True
    assert cmd["command"] == {"name": "on", "target": "lamp", "result": "ok: lamp on"}
    assert cmd["content_type"] == "text/plain"
    assert cmd["received"].endswith("Z")
    assert refused["authorized"] is False
    assert refused["command"]["result"] == "error: forbidden"
    assert chat["command"] is None
    assert len({r["id"] for r in records}) == 3
    assert agent.pin(LAMP) is True  # eve's "off lamp" changed nothing


def test_output_state_is_retained_on_mqtt(
    kamailio, mosquitto, agent_factory, probe_factory, device_id, peer_factory
):
    B = f"sipagent/{device_id}"
    agent = agent_factory(agent_toml(kamailio, device_id=device_id, mosquitto=mosquitto))
    agent.wait_ready()
    first = probe_factory(f"{B}/output/#")
    first.wait_for(f"{B}/output/lamp/state", lambda m: m.payload == b"OFF")
    owner = peer_factory("owner")
    owner.send(kamailio.aor("agent"), "on lamp")
    owner.wait_message()
    first.wait_for(f"{B}/output/lamp/state", lambda m: m.payload == b"ON")
    late = probe_factory(f"{B}/output/+/state")
    retained = late.wait_for(f"{B}/output/lamp/state")
    assert (retained.payload, retained.retain) == (b"ON", True)


def test_mqtt_message_send_reaches_the_peer_and_reports_the_code(
    kamailio, mosquitto, agent_factory, probe_factory, device_id, peer_factory
):
    B = f"sipagent/{device_id}"
    probe = probe_factory(f"{B}/#")
    agent = agent_factory(agent_toml(kamailio, device_id=device_id, mosquitto=mosquitto))
    agent.wait_ready()
    _wait_online(probe, B)
    owner = peer_factory("owner")
    request = {"to": kamailio.aor("owner"), "body": "door opened", "id": "n-1"}
    probe.publish(f"{B}/message/send", json.dumps(request))
    assert owner.wait_message()["body"] == "door opened"
    sent = _json(probe.wait_for(f"{B}/message/sent"))
    assert sent["id"] == "n-1"
    assert sent["code"] == 200 and sent["ok"] is True


def test_mqtt_message_send_failures_are_reported(
    kamailio, mosquitto, agent_factory, probe_factory, device_id
):
    B = f"sipagent/{device_id}"
    probe = probe_factory(f"{B}/#")
    agent = agent_factory(agent_toml(kamailio, device_id=device_id, mosquitto=mosquitto))
    agent.wait_ready()
    _wait_online(probe, B)
    probe.publish(f"{B}/message/send", json.dumps({"to": "nobody", "body": "x", "id": "a"}))
    bad_uri = _json(probe.wait_for(f"{B}/message/sent", lambda m: _json(m)["id"] == "a"))
    assert bad_uri["ok"] is False and "not a SIP URI" in bad_uri["reason"]
    request = {"to": kamailio.aor("nobody"), "body": "x", "id": "b"}
    probe.publish(f"{B}/message/send", json.dumps(request))
    unknown = _json(probe.wait_for(f"{B}/message/sent", lambda m: _json(m)["id"] == "b"))
    assert unknown["ok"] is False and unknown["code"] >= 400
    probe.publish(f"{B}/message/send", b"not json")
    garbage = _json(probe.wait_for(f"{B}/message/sent", lambda m: "JSON" in _json(m)["reason"]))
    assert garbage["ok"] is False


def test_mqtt_output_set_and_command_topic(
    kamailio, mosquitto, agent_factory, probe_factory, device_id
):
    B = f"sipagent/{device_id}"
    probe = probe_factory(f"{B}/#")
    agent = agent_factory(
        agent_toml(
            kamailio, device_id=device_id, mosquitto=mosquitto, allow=("owner", "mqtt:local")
        )
    )
    agent.wait_ready()
    _wait_online(probe, B)
    probe.publish(f"{B}/output/gate/set", "ON")
    probe.wait_for(f"{B}/output/gate/state", lambda m: m.payload == b"ON")
    assert agent.pin(GATE) is True
    probe.publish(f"{B}/command", "off gate")
    result = _json(probe.wait_for(f"{B}/command/result"))
    assert result == {"command": "off gate", "ok": True, "result": "ok: gate off"}
    assert agent.pin(GATE) is False
