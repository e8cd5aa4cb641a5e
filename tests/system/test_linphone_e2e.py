"""Linphone (linphonec 5.1, Debian linphone-cli) against the agent through Kamailio.

Linphone wraps its messages in CPIM and asks for delivery notices; the agent obeys the
command inside, answers, and tells Linphone the message was delivered and displayed, which
Linphone shows as the message's state (DeliveredToUser, then Displayed). A message the
agent sends from MQTT with `"notify": true` comes back as delivered on `B/message/sent`.
"""

from __future__ import annotations

import json
from pathlib import Path

from lab.configs import agent_toml
from lab.linphone import Linphonec

LAMP = 17


def test_linphone_command_is_obeyed_and_shown_delivered_and_displayed(
    kamailio, mosquitto, agent_factory, probe_factory, device_id, tmp_path: Path
) -> None:
    B = f"sipagent/{device_id}"
    agent = agent_factory(agent_toml(kamailio, mosquitto=mosquitto, device_id=device_id))
    agent.wait_ready()
    probe = probe_factory(f"{B}/#")
    probe.wait_for(f"{B}/availability", lambda m: m.payload == b"online", consume=False)
    with Linphonec(kamailio, "owner", tmp_path / "linphone") as phone:
        phone.wait_registered()
        phone.chat(kamailio.aor("agent"), "on lamp")
        phone.wait_received("ok: lamp on")
        assert agent.pin(LAMP) is True
        phone.wait_state("DeliveredToUser")
        phone.wait_state("Displayed")
        record = json.loads(probe.wait_for(f"{B}/message/in").payload)
        owner = f"<{kamailio.aor('owner')}>"
        assert (record["from"], record["cpim_from"]) == (owner, owner)
        assert (record["body"], record["content_type"]) == ("on lamp", "text/plain")
        assert record["command"]["result"] == "ok: lamp on"

        # From MQTT, asking for notices: Linphone's "delivered" comes back.
        send = {"id": "n1", "to": kamailio.aor("owner"), "body": "door open", "notify": True}
        probe.publish(f"{B}/message/send", json.dumps(send))
        phone.wait_received("door open")
        # Linphone sends its notice before its 200 OK: the two records may come either way.
        sent = [json.loads(probe.wait_for(f"{B}/message/sent").payload) for _ in range(2)]
        outcome = next(r for r in sent if "delivery" not in r)
        notice = next(r for r in sent if "delivery" in r)
        assert (outcome["id"], outcome["ok"]) == ("n1", True)
        assert (notice["id"], notice["delivery"]) == ("n1", "delivered")
    # Linphone's notices and the reply were never taken as messages: one message/in only.
    assert len(probe.messages(f"{B}/message/in")) == 1
