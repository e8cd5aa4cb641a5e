"""Rigs and config texts the pure tests share: a core part built from a config and the fakes.

One place for what more than one test module uses, so that no test module imports another.
Pure, like lab.fakes: the standard library, `agent.core`, `agent.config` and lab.fakes only,
so the pure suite (tests/pure) runs on a bare Python.
"""

from __future__ import annotations

import base64

from agent.config.load import parse_config
from agent.core.agent import Agent
from agent.core.presence_keeper import PresenceKeeper
from agent.core.topics import Topics

from .fakes import FakeLink, FakeNotifier, FakeOutbox, FakePins, FakeSip, FakeSipPresence

# --- the agent behind a PBX (tests/pure/test_core.py, test_core_fuzz.py) ---------------------

# `AGENT_CONFIG.format(on_forbidden="reply")`: an owner, an MQTT identity, one gate.
AGENT_CONFIG = """
[device]
id = "porch"
[sip]
uri = "sip:porch@pbx.example.org"
registrar = "sip:pbx.example.org"
password = "pw"
[access]
allow = ["sip:owner@pbx.example.org"]
on_forbidden = "{on_forbidden}"
[mqtt]
host = "localhost"
identity = "sip:ha@pbx.example.org"
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
"""

# --- access rights through the Dispatcher (tests/pure/test_dispatch.py, test_access_hostile.py)

KEY = b"12345678901234567890"
SECRET = base64.b32encode(KEY).decode()

# `ACCESS_CONFIG.format(on_forbidden="reply")`: the owner and mqtt:local may do anything,
# alice some commands on some outputs (the gate with a one-time code), guest only `status`.
ACCESS_CONFIG = f"""
[device]
id = "t"
[sip]
uri = "sip:t@pbx.example.org"
[access]
allow = ["sip:owner@pbx.example.org", "mqtt:local"]
on_forbidden = "{{on_forbidden}}"
require_code = ["gate"]
rate_per_minute = 6
rate_burst = 3
[access.users."sip:alice@pbx.example.org"]
commands = ["on", "off", "pulse", "status"]
outputs = ["lamp", "gate"]
totp_secret = "{SECRET}"
[access.users."sip:guest@pbx.example.org"]
commands = ["status"]
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
[gpio.outputs.lamp]
pin = 18
[gpio.outputs.dimmer]
pin = 12
pwm = true
"""

# Senders as they arrive (a From header, a bare URI, angle brackets) for ACCESS_CONFIG's users.
OWNER = '"Owner" <sip:owner@PBX.example.org:5060;transport=tcp>;tag=1'
ALICE = "sip:alice@pbx.example.org"
GUEST = "<sip:guest@pbx.example.org>"
EVE = "sip:eve@pbx.example.org"

# --- presence (tests/pure/test_presence.py, test_presence_notes.py) ------------------------

# A door contact that makes the device busy and texts two contacts; `mode` is sip.presence.
PRESENCE_CONFIG = """
[device]
id = "porch"
[sip]
uri = "sip:porch@127.0.0.1"
presence = "{mode}"
{sip}
[access]
allow = ["sip:owner@127.0.0.1"]
[gpio]
pin_factory = "mock"
[gpio.outputs.lamp]
pin = 17
[gpio.inputs.door]
pin = 27
active_text = "open"
inactive_text = "closed"
message_to = ["sip:owner@127.0.0.1", "sip:bob@127.0.0.1"]
[gpio.inputs.door.when_active]
status = "busy"
message = "door {{door}}, lamp {{lamp}}"
[gpio.inputs.door.when_inactive]
status = "available"
[presence]
note = "door {{door}}"
{extra}
"""


class PresenceRig:
    """A started PresenceKeeper on PRESENCE_CONFIG, with fake SIP presence, pins and MQTT;
    the messages it texts are recorded in `messages`."""

    def __init__(
        self, mode: str = "serve", extra: str = "", sip: str = "", door: bool = False
    ) -> None:
        self.config = parse_config(PRESENCE_CONFIG.format(mode=mode, extra=extra, sip=sip))
        self.sip = FakeSipPresence()
        self.pins = FakePins(self.config.gpio.outputs, inputs=("door",))
        self.pins.active["door"] = door
        self.mqtt = FakeLink()
        self.messages: list[tuple[str, str]] = []
        self.keeper = PresenceKeeper(
            self.config,
            self.sip,
            self.pins,
            self.pins,
            self.mqtt,
            lambda to, body: self.messages.append((to, body)),
            Topics("sipagent/porch"),
        )
        self.keeper.start()

    def door(self, active: bool) -> None:
        self.pins.active["door"] = active
        self.keeper.on_input("door", active)


class AgentRig(PresenceRig):
    """The keeper inside a real core.Agent, with the fakes for SIP, MQTT and pins."""

    def __init__(self) -> None:
        super().__init__(extra='[mqtt]\nhost = "localhost"')
        outputs = FakePins(self.config.gpio.outputs)
        self.agent = Agent(
            self.config, FakeSip(routed=False), outputs, self.mqtt, FakeNotifier(), self.keeper,
            FakeOutbox(),
        )  # fmt: skip
