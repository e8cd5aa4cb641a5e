#!/usr/bin/env python3
"""Drive the agent from a real Home Assistant, the way an owner would, and report what HA did.

    scripts/ha_check.py [--ha-venv /work/ha-venv] [--keep]

Needs a venv with Home Assistant 2024.3.3 (the newest release that runs on Python 3.11; about
675 MB, so it lives outside the repository):

    python3.11 -m venv /work/ha-venv
    /work/ha-venv/bin/pip install homeassistant==2024.3.3 paho-mqtt==1.6.1 "josepy<2"

(paho-mqtt 1.6.1 is what HA's MQTT integration asks for, installed ahead so that HA need not;
josepy 2 dropped what HA 2024.3's cloud dependency imports at its first HTTP request.)

It starts a private Mosquitto and an agent (direct mode, mock pins: a gate with a pulse and
the label "Open gate", a door contact, a doorbell with `trigger = true`), then Home Assistant
on a free loopback port with a fresh config directory. Through HA's own REST and websocket
APIs, as its UI does, it:

1. onboards an owner and adds the MQTT integration for the private broker;
2. waits for the discovered device and lists its entities;
3. sets presence through the select and the note through the text, and changes presence
   over MQTT (as a SIP command would) to see the select follow;
4. presses the "Open gate" button and reads the gate pin's history inside the agent;
5. lists the device's triggers (what the device page offers), builds an automation on
   `"Doorbell" pressed` that publishes to MQTT, presses the mock doorbell, and sees the
   automation run;
6. reads the diagnostic entities;
7. restarts the agent without the doorbell and sees its entity and triggers go.

Exit 0 when every step did what it should; each step prints what HA showed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from lab.agentproc import AgentProcess
from lab.configs import BELL_CONFIG, DOOR_CONFIG, agent_toml
from lab.mosquitto import Mosquitto
from lab.mqttprobe import MqttProbe
from lab.ports import free_port
from lab.waiting import wait_until

DEVICE = "hacheck"
BASE = f"sipagent/{DEVICE}"
HA_CONFIG = """
homeassistant:
  name: sipagent check
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  time_zone: UTC
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
websocket_api:
onboarding:
config:
device_automation:
automation: !include automations.yaml
logger:
  default: warning
"""
# Talks to HA's websocket API with the aiohttp that comes with Home Assistant.
WS_HELPER = """
import asyncio, json, sys, aiohttp
async def main(url, token, calls):
    async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
        await ws.receive_json()
        await ws.send_json({"type": "auth", "access_token": token})
        assert (await ws.receive_json())["type"] == "auth_ok"
        out = []
        for i, call in enumerate(calls, 1):
            await ws.send_json({"id": i, **call})
            while (msg := await ws.receive_json()).get("id") != i:
                pass
            out.append(msg)
        print(json.dumps(out))
asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
"""


class HomeAssistant:
    def __init__(self, venv: Path, workdir: Path) -> None:
        self.python = venv / "bin" / "python"
        self.config_dir = workdir / "ha-config"
        self.config_dir.mkdir(parents=True)
        self.port = free_port("tcp")
        (self.config_dir / "configuration.yaml").write_text(HA_CONFIG.format(port=self.port))
        (self.config_dir / "automations.yaml").write_text("[]\n")
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "home-assistant.log"
        self.token = ""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(self.python), "-m", "homeassistant", "--config", str(self.config_dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started = time.monotonic()

    def request(
        self, method: str, path: str, body: Any = None, form: bool = False, text: bool = False
    ) -> Any:
        data, headers = None, {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            if form:
                data = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in body.items()).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data, headers, method=method)
        with urllib.request.urlopen(req, timeout=30) as resp:
            answer = resp.read().decode()
        if text:
            return answer
        return json.loads(answer) if answer else None

    def wait_up(self) -> float:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise SystemExit(f"Home Assistant exited:\n{self.log.read_text()[-3000:]}")
            try:
                self.request("GET", "/api/onboarding")
            except (urllib.error.URLError, ConnectionError):
                return False
            return True

        wait_until(up, 300, "Home Assistant's API", 0.2)
        return time.monotonic() - self.started

    def onboard(self) -> None:
        client_id = f"{self.url}/"
        user = {"client_id": client_id, "name": "Owner", "username": "owner"}
        user |= {"password": "sipagent-check", "language": "en"}
        code = self.request("POST", "/api/onboarding/users", user)["auth_code"]
        grant = {"grant_type": "authorization_code", "code": code, "client_id": client_id}
        self.token = self.request("POST", "/auth/token", grant, form=True)["access_token"]

    def ws(self, *calls: dict[str, Any]) -> list[dict[str, Any]]:
        url = f"ws://127.0.0.1:{self.port}/api/websocket"
        argv = [str(self.python), "-c", WS_HELPER, url, self.token, json.dumps(list(calls))]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
        return json.loads(out)

    def states(self) -> dict[str, dict[str, Any]]:
        return {s["entity_id"]: s for s in self.request("GET", "/api/states")}

    def call(self, domain: str, service: str, **data: Any) -> None:
        self.request("POST", f"/api/services/{domain}/{service}", data)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def say(step: str, text: str) -> None:
    print(f"[{step}] {text}", flush=True)


def agent_config(mosquitto: Mosquitto, bell: bool = True) -> str:
    return agent_toml(
        mosquitto=mosquitto,
        device_id=DEVICE,
        allow=("owner", "mqtt:local"),
        output_extra={"gate": 'pulse = "500ms"\nlabel = "Open gate"'},
        log_level="info",
        extra=DOOR_CONFIG + (BELL_CONFIG if bell else ""),
    ).replace('[device]\nid = "hacheck"', '[device]\nid = "hacheck"\nname = "Porch"')


def find(states: dict[str, Any], domain: str, suffix: str) -> str:
    found = [e for e in states if e.startswith(f"{domain}.") and e.endswith(suffix)]
    if len(found) != 1:
        raise AssertionError(f"no single {domain}.*{suffix} among {sorted(states)}")
    return found[0]


def run(ha_venv: Path, workdir: Path) -> None:
    with Mosquitto(workdir / "mosquitto") as mosquitto:
        probe = MqttProbe(mosquitto.host, mosquitto.port, [f"{BASE}/#", "check/#"])
        agent = AgentProcess(workdir / "agent", agent_config(mosquitto))
        ha = HomeAssistant(ha_venv, workdir)
        try:
            _steps(ha, agent, probe, mosquitto, workdir)
        finally:
            ha.stop()
            agent.close()
            probe.close()


def _steps(ha: HomeAssistant, agent: AgentProcess, probe: MqttProbe, mosquitto, workdir) -> None:
    agent.wait_ready()
    say("start", f"Home Assistant API up after {ha.wait_up():.1f} s")
    ha.onboard()
    flow = ha.request("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
    say("mqtt", f"config flow step {flow.get('step_id')!r}")
    entry = ha.request(
        "POST",
        f"/api/config/config_entries/flow/{flow['flow_id']}",
        {"broker": mosquitto.host, "port": mosquitto.port},
    )
    say("mqtt", f"integration added: {entry['type']} {entry.get('title')}")

    def discovered() -> dict[str, Any] | None:
        # Found, and available: the agent's retained `online` has reached HA too.
        found = ha.states()
        selects = [s["state"] for e, s in found.items() if e.startswith("select.")]
        return found if selects and selects[0] not in ("unavailable", "unknown") else None

    states = wait_until(
        discovered,
        60,
        "the discovered entities",
        0.5,
    )
    theirs = ("automation", "person", "zone")  # Home Assistant's own
    ours = {e: s["state"] for e, s in states.items() if e.split(".")[0] not in theirs}
    say(
        "discovery",
        f"{len(ours)} entities: " + ", ".join(f"{e}={v}" for e, v in sorted(ours.items())),
    )
    select = find(states, "select", "_presence")
    text = find(states, "text", "_presence_note")
    button = find(states, "button", "_open_gate")
    device_id = ha.request(
        "POST", "/api/template", {"template": f"{{{{ device_id('{select}') }}}}"}, text=True
    )
    say("discovery", f"device {device_id}: select {select}, text {text}, button {button}")

    # -- presence ---------------------------------------------------------------------------
    ha.call("select", "select_option", entity_id=select, option="busy")
    sent = probe.wait_for(f"{BASE}/presence/status/set", timeout=15)
    wait_until(lambda: ha.states()[select]["state"] == "busy", 15, "the select at busy", 0.2)
    say("presence", f"select -> HA published {sent.text!r} on {sent.topic}; select now busy")
    ha.call("text", "set_value", entity_id=text, value="back at 3")
    wait_until(lambda: ha.states()[text]["state"] == "back at 3", 15, "the note", 0.2)
    state = probe.wait_for(f"{BASE}/presence/state", lambda m: "back at 3" in m.text, 15)
    say("presence", f"text -> agent's presence {state.text}")
    probe.publish(f"{BASE}/presence/set", "away")  # as a SIP `presence away` would
    wait_until(lambda: ha.states()[select]["state"] == "away", 15, "the select follows", 0.2)
    note = ha.states()[text]["state"]
    say("presence", f"presence away over MQTT -> HA's select shows away, note {note!r}")

    # -- the gate button ----------------------------------------------------------------------
    ha.call("button", "press", entity_id=button)
    pressed = probe.wait_for(f"{BASE}/command", timeout=15)
    result = probe.wait_for(f"{BASE}/command/result", timeout=15).json()
    wait_until(
        lambda: [v for _, v in agent.pin_history(18)[-2:]] == [1.0, 0.0],
        15,
        "the gate pin on, then off",
    )
    pulse = agent.pin_history(18)[-1][0]
    say(
        "button",
        f"press -> {pressed.text!r} on {pressed.topic} -> {result['result']}; "
        f"gate pin high for {pulse:.3f} s",
    )

    # -- a doorbell automation built from the device's triggers ------------------------------
    [listed] = ha.ws({"type": "device_automation/trigger/list", "device_id": device_id})
    triggers = listed["result"]
    say(
        "trigger",
        f"device page offers {len(triggers)} triggers; from MQTT: "
        + "; ".join(f"{t['type']} {t['subtype']!r}" for t in triggers if t["domain"] == "mqtt"),
    )
    bell = next(
        t for t in triggers if t.get("subtype") == "Doorbell" and t["type"] == "button_short_press"
    )
    automation = {
        "alias": "Doorbell rings",
        "trigger": [bell],
        "action": [
            {"service": "mqtt.publish", "data": {"topic": "check/doorbell", "payload": "rang"}}
        ],
        "mode": "single",
    }
    ha.request("POST", "/api/config/automation/config/doorbell_rings", automation)
    auto_id = wait_until(
        lambda: next((e for e in ha.states() if e.startswith("automation.")), None),
        30,
        "the automation",
        0.2,
    )
    # HA subscribes to the trigger's topic a moment after the automation exists (its MQTT
    # client batches subscriptions): ring until it listens, as a visitor would.
    presses = 0
    rang = None
    while rang is None and presses < 10:
        presses += 1
        agent.drive(22, False)  # the doorbell is pressed (pulled up: low)
        try:
            rang = probe.wait_for("check/doorbell", timeout=2)
        except AssertionError:
            rang = None
        agent.drive(22, True)
    if rang is None:
        raise AssertionError("the doorbell automation never ran (10 presses)")
    last = wait_until(
        lambda: ha.states()[auto_id]["attributes"].get("last_triggered"), 15, "last_triggered", 0.2
    )
    say(
        "trigger",
        f"bell pressed ({presses} press{'es' if presses > 1 else ''}) -> {auto_id} ran "
        f"(last_triggered {last}) and published {rang.text!r}",
    )

    # -- diagnostics --------------------------------------------------------------------------
    states = ha.states()
    diag = {e: s["state"] for e, s in states.items() if any(
        e.endswith(k) for k in ("_registration", "_public_address", "_outbox", "_pjproject",
                                "_pjproject_outdated", "_last_error"))}  # fmt: skip
    say("diagnostics", ", ".join(f"{e}={v}" for e, v in sorted(diag.items())))
    registry = ha.ws({"type": "config/entity_registry/list"})[0]["result"]
    categories = {r["entity_id"]: r.get("entity_category") for r in registry}
    assert all(categories.get(e) == "diagnostic" for e in diag), categories
    unique = sorted(r["unique_id"] for r in registry if r["platform"] == "mqtt")
    say("diagnostics", "all diagnostic; unique ids: " + ", ".join(unique))

    # -- an input removed from the config disappears from HA ---------------------------------
    agent.close()
    (workdir / "agent" / "notify.sock").unlink()
    # The same state directory: the outbox database remembers what was announced.
    again = AgentProcess(workdir / "agent", agent_config(mosquitto, bell=False))
    try:
        again.wait_ready()
        wait_until(
            lambda: not any(e.endswith("_doorbell") for e in ha.states()),
            30,
            "the doorbell entity gone",
            0.5,
        )
        [listed] = ha.ws({"type": "device_automation/trigger/list", "device_id": device_id})
        left = [t["subtype"] for t in listed["result"] if t["domain"] == "mqtt"]
        assert "Doorbell" not in left, left
        say("removal", f"doorbell removed from the config -> entity and triggers gone ({left})")
    finally:
        again.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ha-venv", default=os.environ.get("HA_VENV", "/work/ha-venv"))
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    venv = Path(args.ha_venv)
    if not (venv / "bin" / "hass").exists():
        print(f"no Home Assistant in {venv} (see this script's docstring)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="sipagent-ha-"))
    try:
        run(venv, workdir)
    except AssertionError as err:
        print(f"FAILED: {err}\n(logs in {workdir})", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print("all steps passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
