"""Memory by layer: what importing and starting each part of the agent costs.

Run as a program (a fresh interpreter) with an output path, it loads the agent's layers one
by one, as `sipagent run` does (agent.lean's stand-ins in place), and writes cumulative RSS
and anonymous memory after each as JSON. scripts/bench.py and scripts/bench_memory.py show
it beside the idle figure: the table in the README ("Memory").
"""

from __future__ import annotations

import sys


def memory_kb() -> tuple[int, int]:
    """(VmRSS, RssAnon) of this process, kB."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            fields[name] = value
    return int(fields["VmRSS"].split()[0]), int(fields["RssAnon"].split()[0])


# Before anything else is imported: the interpreter alone.
INTERPRETER = memory_kb()

import importlib  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402


def start_pjsua2() -> None:
    from agent.adapters.sip.binding import skip_openssl_error_texts
    from lab.bareendpoint import bare_endpoint

    skip_openssl_error_texts()  # as the agent does where nothing uses TLS (the example)
    globals()["_endpoint"] = bare_endpoint()  # kept alive: the figure is for a running one


LAYERS: list[tuple[str, object]] = [
    ("systemd (journal, daemon)", "systemd.journal"),
    ("sqlite3", "sqlite3"),
    ("paho-mqtt (without ssl: agent.lean)", "paho.mqtt.client"),
    ("gpiozero (+ MockFactory)", "gpiozero.pins.mock"),
    ("pjsua2 imported", "pjsua2"),
    ("pjsua2 endpoint created and initialised", start_pjsua2),
    ("the agent's own modules", "agent.loop"),
]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent.toml"


def main() -> None:
    rows = [("Python 3 interpreter", *INTERPRETER)]
    from agent.cli import _load_for_run  # reads the config, then forgets tomllib's parser
    from agent.lean import deferrable, deferred_imports

    with deferred_imports(deferrable(None)):
        config = _load_for_run(str(EXAMPLE))
        rows.append(("the config read (tomllib, dataclasses, re, typing, logging)", *memory_kb()))
        with deferred_imports(deferrable(config)):
            for label, step in LAYERS:
                if isinstance(step, str):
                    module = importlib.import_module(step)
                    if step == "pjsua2":
                        module.Endpoint  # noqa: B018 (the wheel loads its extension lazily)
                elif callable(step):
                    step()
                rows.append((label, *memory_kb()))
    with open(sys.argv[1], "w") as out:
        json.dump([(label, rss / 1024, anon / 1024) for label, rss, anon in rows], out)


if __name__ == "__main__":
    main()


def memory_layers(repo: str, python: str = sys.executable) -> list[tuple[str, float, float]]:
    """Run this module in a fresh interpreter: (layer, cumulative RSS MB, anonymous MB)."""
    import os
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join((repo, os.path.join(repo, "tests")))}
        subprocess.run(
            [python, __file__, out.name], env=env, check=True, capture_output=True, timeout=60
        )
        return [tuple(row) for row in json.load(open(out.name))]  # type: ignore[misc]
