"""Runs the real agent in its own process for the tests, with its mock pins in reach.

pjsua2 allows one endpoint per process, and signals reach only a main thread, so
each test's agent is a child process. MockFactory pins live inside that process:
this host answers JSON lines on stdin (read with os.read, see docs/lab.md) so a
test can read output pins and drive input pins. Its last line reports every pin after
shutdown, so a test can check the safe state that shutdown left behind.

    python lab/agent_main.py CONFIG
    stdin:  {"op": "pin", "pin": 17} | {"op": "drive", "pin": 27, "state": true} | {"op": "stop"}
            {"op": "history", "pin": 17}: every change of the pin, as [seconds since the
            change before, level], from MockPin's own record (no sampling race)
    stdout: {"event": "started"} {"event": "pin", ...} {"event": "exit", "code": 0, "pins": {...}}
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

from gpiozero import Device

from agent.adapters import signals
from agent.adapters.service import setup_logging
from agent.config.load import load_config
from agent.loop import Runner

_out_lock = threading.Lock()


def emit(event: str, **fields: Any) -> None:
    line = json.dumps({"event": event, **fields}) + "\n"
    with _out_lock:
        os.write(1, line.encode())


def pin_states() -> dict[str, bool]:
    factory = Device.pin_factory
    pins = getattr(factory, "pins", {})
    return {str(info.name): bool(pin.state) for info, pin in pins.items()}


def control(runner: Runner) -> None:
    """Answer the test's requests until stdin closes (or the test asks to stop)."""
    buffer = b""
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            runner.request_stop("stdin closed")
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                handle(runner, json.loads(line))


def handle(runner: Runner, cmd: dict[str, Any]) -> None:
    factory = Device.pin_factory
    if cmd["op"] == "pin":
        pin = factory.pin(cmd["pin"])
        # MockPin keeps the time.monotonic() of its last change: benchmarks compare it with
        # the moment they sent a command (CLOCK_MONOTONIC is shared by all processes).
        state = pin.state
        emit("pin", pin=cmd["pin"], state=bool(state), value=float(state),
             changed_at=pin._last_change)  # fmt: skip
    elif cmd["op"] == "history":
        states = [[s.timestamp, float(s.state)] for s in factory.pin(cmd["pin"]).states]
        emit("history", pin=cmd["pin"], states=states)
    elif cmd["op"] == "drive":
        pin = factory.pin(cmd["pin"])
        pin.drive_high() if cmd["state"] else pin.drive_low()
        emit("driven", pin=cmd["pin"], state=cmd["state"])
    elif cmd["op"] == "stop":
        runner.request_stop("test asked")
    else:
        emit("error", text=f"unknown op {cmd['op']!r}")


def main() -> int:
    signals.install()  # as `sipagent run` does, before anything slow
    config = load_config(sys.argv[1])
    setup_logging(config.log.level)
    runner = Runner(config)
    threading.Thread(target=control, args=(runner,), daemon=True, name="control").start()
    emit("started", pid=os.getpid())
    code = 1
    try:
        code = runner.run()
    finally:
        emit("exit", code=code, pins=pin_states())
    return code


if __name__ == "__main__":
    raise SystemExit(main())
