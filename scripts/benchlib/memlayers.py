"""Resident memory by layer: what importing and starting each part of the agent costs.

Run as a program (a fresh interpreter) with an output path, it loads the agent's layers one
by one and writes cumulative RSS after each there as JSON (stdout gets pjlib's banner).
scripts/bench.py shows it next to the idle figure, so a missed memory target comes with the
profile that explains it.
"""

from __future__ import annotations

import importlib
import json
import sys


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start_pjsua2() -> None:
    import pjsua2 as pj

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.medConfig.hasIoqueue = False
    cfg.medConfig.threadCnt = 0
    cfg.logConfig.level = cfg.logConfig.consoleLevel = 0
    ep.libInit(cfg)
    globals()["_endpoint"] = ep  # kept alive: the figure is for a running endpoint


LAYERS: list[tuple[str, object]] = [
    ("Python 3 interpreter", None),
    ("import pjsua2", "pjsua2"),
    ("pjsua2 endpoint created and initialised", start_pjsua2),
    ("import paho-mqtt (with ssl)", "paho.mqtt.client"),
    ("import gpiozero (+ MockFactory)", "gpiozero.pins.mock"),
    ("import systemd (journal, daemon)", "systemd.journal"),
    ("import sqlite3", "sqlite3"),
    ("import the agent's own modules", "agent.loop"),
]


def main() -> None:
    rows = []
    for label, step in LAYERS:
        if isinstance(step, str):
            importlib.import_module(step)
        elif callable(step):
            step()
        rows.append((label, rss_kb() / 1024))
    with open(sys.argv[1], "w") as out:
        json.dump(rows, out)


if __name__ == "__main__":
    main()


def memory_layers(repo: str, python: str = sys.executable) -> list[tuple[str, float]]:
    """Run this module in a fresh interpreter; its rows: (layer, cumulative RSS in MB)."""
    import os
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "PYTHONPATH": repo}
        subprocess.run(
            [python, __file__, out.name], env=env, check=True, capture_output=True, timeout=60
        )
        return [tuple(row) for row in json.load(open(out.name))]  # type: ignore[misc]
