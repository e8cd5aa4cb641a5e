"""The whole agent end to end: Kamailio, Mosquitto, a peer UA in its own process, mock pins."""

from __future__ import annotations

import json
import re

from lab.configs import agent_toml
from lab.waiting import wait_until

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


# "SIP failed (401 Unauthorized), retry 3 in 2s" and "SIP registering (attempt 4)" (STATUS=)
_RETRY = re.compile(r"^SIP failed \(.*\), retry (\d+) in (\d+)s")
_ATTEMPT = re.compile(r"^SIP registering \(attempt (\d+)\)")


def test_a_refused_registration_is_retried_after_delays_that_double_up_to_the_bound(
    kamailio, agent_factory
):
    retry_min, retry_max = 1, 4
    recovery = (
        f"[sip.recovery]\ncheck_s = 0\nretry_min_s = {retry_min}\nretry_max_s = {retry_max}\n"
    )
    agent = agent_factory(agent_toml(kamailio, password="wrong", extra=recovery))

    def notified() -> list[tuple[float, str]]:
        return [(t, f["STATUS"]) for t, f in agent.notify.messages if "STATUS" in f]

    def reached(failures: int) -> bool:
        if agent.proc.poll() is not None:
            raise AssertionError(f"agent exited:\n{agent.log_tail()}")
        return any((m := _RETRY.match(s)) and int(m[1]) >= failures for _, s in notified())

    # Each retry comes within its delay (at most retry_max) and the loop's 1 s poll.
    wait_until(lambda: reached(5), 5 * (retry_max + 1) + 15, f"5 failures: {notified()}")
    retries = {int(m[1]): (t, int(m[2])) for t, s in notified() if (m := _RETRY.match(s))}
    attempts = {int(m[1]): t for t, s in notified() if (m := _ATTEMPT.match(s))}
    for failures in range(1, 6):
        base = min(retry_max, retry_min * 2 ** (failures - 1))  # the documented schedule
        failed_at, shown = retries[failures]
        # What the agent says it will wait ("retry 3 in 2s", whole seconds): within the
        # bound, and half of it at least (jitter takes up to half off).
        assert base / 2 - 0.5 <= shown <= retry_max, (failures, shown, notified())
        if failures < 5:
            # ... and the time it really waited, on the test's clock: not less (the slack is
            # for a listener held up on a loaded machine; a 0.1 s delay fails by far).
            waited = attempts[failures + 1] - failed_at
            assert waited >= base / 2 - 0.3, (failures, waited, notified())
    assert agent.notify.times("READY") == []


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
