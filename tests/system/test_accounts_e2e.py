"""Two SIP accounts at once: a PBX extension and a public number, at two real Kamailios.

Each account registers at its own server; a command from either side is obeyed and
answered by the account it came in on; `B/message/send` picks the account; each account's
registration is on MQTT; a provider that does not answer holds neither READY nor the PBX
side.
"""

from __future__ import annotations

import json

from lab.configs import agent_toml
from lab.ports import free_port

LAMP = 17


def _second_account(registrar: str, domain: str = "provider.test") -> str:
    return f"""
[[sip.accounts]]
name = "public"
uri = "sip:agent@{domain}"
registrar = "{registrar}"
password = "agentpw"
listen = "127.0.0.1:0"
"""


def _registered(message) -> bool:  # type: ignore[no-untyped-def]
    return json.loads(message.payload)["state"] == "registered"


def test_each_side_is_answered_by_its_own_account(
    kamailio_factory, mosquitto, agent_factory, peer_factory, probe_factory, device_id
) -> None:
    pbx = kamailio_factory(domain="pbx.test")
    provider = kamailio_factory(domain="provider.test")
    B = f"sipagent/{device_id}"
    config = agent_toml(
        pbx,
        mosquitto=mosquitto,
        device_id=device_id,
        allow=("owner", provider.aor("owner")),
        extra=_second_account(provider.registrar_uri),
    )
    probe = probe_factory(f"{B}/#")
    agent = agent_factory(config)
    agent.wait_ready()
    for name in ("main", "public"):
        probe.wait_for(f"{B}/registration/{name}", _registered, timeout=20, consume=False)
    probe.wait_for(f"{B}/registration", _registered, consume=False)  # the first's, as ever
    on_pbx = peer_factory("owner", server=pbx)
    on_provider = peer_factory("owner", server=provider)

    on_pbx.send(pbx.aor("agent"), "on lamp")
    reply = on_pbx.wait_message()
    assert (reply["body"], reply["from"]) == ("ok: lamp on", pbx.aor("agent"))
    on_provider.send(provider.aor("agent"), "off lamp")
    reply = on_provider.wait_message()
    # The reply left by the public account, through the provider: its From says so.
    assert (reply["body"], reply["from"]) == ("ok: lamp off", provider.aor("agent"))
    assert agent.pin(LAMP) is False

    # B/message/send: by the named account, or by the first.
    sends = [
        {"id": "p", "to": provider.aor("owner"), "body": "via public", "account": "public"},
        {"id": "m", "to": pbx.aor("owner"), "body": "via main"},
        {"id": "x", "to": pbx.aor("owner"), "body": "nowhere", "account": "nope"},
    ]
    for send in sends:
        probe.publish(f"{B}/message/send", json.dumps(send))
    got = on_provider.wait_message(lambda e: e.get("body") == "via public")
    assert got["from"] == provider.aor("agent")
    got = on_pbx.wait_message(lambda e: e.get("body") == "via main")
    assert got["from"] == pbx.aor("agent")
    outcomes = {}
    for _ in sends:
        record = json.loads(probe.wait_for(f"{B}/message/sent").payload)
        outcomes[record["id"]] = record
    assert outcomes["p"]["ok"] and outcomes["m"]["ok"]
    assert outcomes["x"]["ok"] is False and "no SIP account 'nope'" in outcomes["x"]["reason"]


def test_a_provider_that_never_answers_holds_neither_ready_nor_the_pbx(
    kamailio_factory, mosquitto, agent_factory, peer_factory, probe_factory, device_id
) -> None:
    pbx = kamailio_factory(domain="pbx.test")
    silent = f"sip:127.0.0.1:{free_port()}"  # nothing listens there: REGISTER times out
    B = f"sipagent/{device_id}"
    config = agent_toml(
        pbx, mosquitto=mosquitto, device_id=device_id, extra=_second_account(silent)
    )
    probe = probe_factory(f"{B}/#")
    agent = agent_factory(config)
    agent.wait_ready()  # the first account registered: READY, whatever the provider does
    probe.wait_for(f"{B}/registration/main", _registered, timeout=20, consume=False)
    public = json.loads(probe.wait_for(f"{B}/registration/public", consume=False).payload)
    assert public["state"] != "registered"
    owner = peer_factory("owner", server=pbx)
    owner.send(pbx.aor("agent"), "status")
    status = owner.wait_message()["body"]
    assert "main registered" in status and "public " in status, status
    owner.send(pbx.aor("agent"), "on lamp")
    assert owner.wait_message()["body"] == "ok: lamp on"
