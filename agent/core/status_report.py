"""The running agent's status as data (answered on the status socket) and as text (printed
by `sipagent status`). `snapshot` runs on the owner thread; `render` is pure.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agent import __version__

if TYPE_CHECKING:  # `sipagent status` only renders: it must not load pjsua2
    from agent.core.agent import Agent

# The fates a counter name ends with (agent.core.counters: "<source>.<thing>.<fate>"), in the order
# `sipagent status` prints them; others follow under "other".
FATES = ("refused", "dropped", "limited")


def snapshot(agent: Agent, extra_counters: Mapping[str, int], reload: object) -> dict[str, Any]:
    """Everything `sipagent status` shows; plain JSON-ready values, no secrets."""
    reg = agent.registration
    outputs: dict[str, Any] = {}
    for name in agent.output_names():
        config = agent.output_config(name)
        outputs[name] = {
            "on": agent.outputs.output_is_on(name),
            "level": round(agent.outputs.level(name) * 100, 1) if config.pwm else None,
            "running": agent.outputs.activity(name),
        }
    inputs: dict[str, Any] = {}
    presence: dict[str, Any] | None = None
    keeper = agent.presence
    if keeper is not None:
        for name, (active, text) in keeper.inputs_now().items():
            inputs[name] = {"active": active, "text": text}
        if keeper.current is not None:
            presence = {**dataclasses.asdict(keeper.current), "mode": keeper.mode}
    mqtt: dict[str, Any] | None = None
    if agent.mqtt is not None:
        mqtt = {"connected": agent.mqtt.connected, "broker": agent.mqtt.broker}
    bridge = agent.bridge
    counters = {**agent.counters.snapshot(), **{k: v for k, v in extra_counters.items() if v}}
    return {
        "version": __version__,
        "device": agent.config.device.id,
        "config": agent.config.source,
        "uptime_s": round(time.monotonic() - agent.started),
        "ready": agent.ready,
        "summary": agent.status_summary(),
        "registration": reg.as_dict(),
        # Each account's own, when there are several ([[sip.accounts]]).
        "accounts": {n: r.as_dict() for n, r in agent.registrations.items()}
        if len(agent.registrations) > 1
        else None,
        "public_address": reg.public or None,
        "mqtt": mqtt,
        "outputs": outputs,
        "inputs": inputs,
        "presence": presence,
        "outbox": bridge.delivery.status() if bridge is not None else None,
        "counters": dict(sorted(counters.items())),
        "diagnostics": agent.diagnostics.payload(),
        # The SIP stack in words: its fixes, how MESSAGE is answered, TLS, load (agent.loop).
        "sip_stack": [line() for line in agent.about],
        "reload": reload,
    }


def render(status: Mapping[str, Any]) -> list[str]:
    """The status as lines for a person."""
    sip = _registration(status["registration"])
    if accounts := status.get("accounts"):
        sip = "; ".join(f"{name} {_registration(reg)}" for name, reg in accounts.items())
    mqtt = status.get("mqtt")
    broker = "off" if mqtt is None else ("connected to " if mqtt["connected"] else "down, next ")
    broker += "" if mqtt is None else str(mqtt["broker"])
    lines = [
        f"sipagent {status['version']}, device {status['device']}, up {_ago(status['uptime_s'])}",
        f"config:        {status['config']}",
        f"registration:  {sip}",
        f"public:        {status.get('public_address') or 'unknown'}",
        f"MQTT:          {broker}",
    ]
    outs = [_output(name, o) for name, o in status["outputs"].items()]
    lines.append(f"outputs:       {', '.join(outs) or 'none'}")
    ins = [f"{name} {i['text']}" for name, i in status["inputs"].items()]
    lines.append(f"inputs:        {', '.join(ins) or 'none'}")
    if (presence := status.get("presence")) is not None:
        note = f" — {presence['note']}" if presence["note"] else ""
        lines.append(f"presence:      {presence['status']}{note} ({presence['mode']})")
    if (box := status.get("outbox")) is not None:
        lines.append(
            f"outbox:        {box['pending']}/{box['capacity']} waiting, "
            f"{box['dropped']} dropped, {box['refused']} refused (when full: {box['when_full']})"
        )
    lines += _counters(status.get("counters") or {})
    diag = status.get("diagnostics") or {}
    if diag.get("pjproject"):
        outdated = " (outdated: lacks security fixes)" if diag.get("pjproject_outdated") else ""
        lines.append(f"pjproject:     {diag['pjproject']}{outdated}")
    lines += [f"SIP stack:     {line}" for line in status.get("sip_stack") or ()]
    if diag.get("last_error"):
        lines.append(f"last error:    {diag['last_error']} ({diag.get('last_error_at')})")
    if (reload := status.get("reload")) is not None:
        lines += _reload(reload)
    return lines


def _registration(reg: Mapping[str, Any]) -> str:
    sip = f"{reg['state']}"
    if reg.get("code"):
        sip += f" ({reg['code']} {reg.get('reason', '')})"
    if reg.get("retry_in") is not None:
        sip += f", retry {reg.get('attempt', '?')} in {reg['retry_in']:g}s"
    return sip


def _output(name: str, o: Mapping[str, Any]) -> str:
    word = f"{o['level']:g}%" if o.get("level") is not None else ("on" if o["on"] else "off")
    return f"{name} {word}" + (f" ({o['running']})" if o.get("running") else "")


def _counters(counters: Mapping[str, int]) -> list[str]:
    lines = []
    groups: dict[str, list[str]] = {fate: [] for fate in (*FATES, "other")}
    for name, count in counters.items():
        fate = name.rsplit(".", 1)[-1]
        groups[fate if fate in FATES else "other"].append(f"{name} {count}")
    for fate, items in groups.items():
        total = sum(counters[i.rsplit(" ", 1)[0]] for i in items)
        detail = f" ({', '.join(items)})" if items else ""
        if fate != "other" or items:
            lines.append(f"{fate + ':':<15}{total}{detail}")
    return lines


def _reload(reload: Mapping[str, Any]) -> list[str]:
    head = f"last reload:   {reload['at']} "
    if not reload["ok"]:
        return [head + "refused: " + "; ".join(reload["problems"])]
    lines = [head + ("applied " + ", ".join(reload["applied"]) if reload["applied"] else "")]
    if not reload["applied"] and not reload["needs_restart"]:
        lines[0] += "no change"
    if reload["needs_restart"]:
        lines.append("  not applied until a restart: " + ", ".join(reload["needs_restart"]))
    return lines


def _ago(seconds: int) -> str:
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
