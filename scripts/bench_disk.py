"""What hostile disks and floods cost the agent's outbox, at its bounds (issue 13).

    sudo .venv/bin/python scripts/bench_disk.py [--json results.json]

Root for the full-disk part (a 1 MiB tmpfs). Prints:
- memory held per MESSAGE kept in memory while the disk cannot take it (tracemalloc, a
  `message/in` record as the agent writes it), and how many `max_memory` holds;
- log lines while the disk is full for ten simulated minutes of a busy loop;
- the bytes on disk (database + WAL) each flood leaves at its bound, default settings:
  MESSAGEs with the broker away, refused `B/command` results, distinct retransmission keys;
- what one `add` costs, durable and held in memory.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path

from agent.adapters.outbox.store import Outbox

RECORD = (
    '{"id":"2b121f04-4a13-4bf6-8cb4-0f2bf3146703","from":"\\"Owner\\" <sip:owner@pbx.example'
    '.org>;tag=a8f3e2","to":"<sip:porch@pbx.example.org>","body":"%s","content_type":"text'
    '/plain","received":"2026-12-01T10:11:12.134Z","authorized":true,"command":{"name":"pu'
    'lse","target":"gate","result":"ok: gate pulsed 2s"}}'
)
TOPIC = "sipagent/porch/message/in"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _payload(i: int) -> bytes:
    return (RECORD % f"pulse gate 2s #{i:06d}").encode()


def memory_per_event(n: int = 5000) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "a-file").write_text("")
        box = Outbox(str(Path(tmp, "a-file", "outbox.db")), clock=Clock(), max_memory=1024**3)
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for i in range(n):
            # Made here, as the agent makes each record: the outbox keeps it.
            box.add(TOPIC, _payload(i), f"call-{i}|1 MESSAGE|tag{i}")
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
        per_event = grown / n
        return {
            "record_bytes": len(_payload(0)),
            "memory_per_event_bytes": round(per_event),
            "accounted_per_event_bytes": round(box.memory_bytes / n),
            "events_in_default_max_memory": int(4 * 1024**2 // (box.memory_bytes / n)),
        }


def log_lines_on_a_full_disk(minutes: int = 10) -> dict[str, float]:
    """A loop turning 100 times a second, an event every turn, disk full all along."""
    if os.geteuid() != 0:
        return {"skipped": "needs root (tmpfs)"}
    with tempfile.TemporaryDirectory() as tmp:
        mount = Path(tmp)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", tmp], check=True)
        try:
            clock = Clock()
            box = Outbox(str(mount / "outbox.db"), clock=clock, max_memory=64 * 1024**2)
            fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError:
                pass
            os.close(fd)
            lines: list[logging.LogRecord] = []
            handler = logging.Handler()
            handler.emit = lines.append  # type: ignore[method-assign]
            agent_log = logging.getLogger("agent")
            agent_log.addHandler(handler)
            agent_log.setLevel(logging.DEBUG)
            for turn in range(minutes * 60 * 100):
                clock.now = turn / 100
                box.add(TOPIC, _payload(turn % 1000))
                box.remove([r.id for r in box.after(0, 1)])  # delivered: the broker is up
                box.maintain()
            agent_log.removeHandler(handler)
            box.close()
        finally:
            subprocess.run(["umount", "-l", tmp], check=False)
    return {"minutes": minutes, "log_lines": len(lines), "per_minute": len(lines) / minutes}


def _flood(name: str, n: int, add, **settings: object) -> dict[str, object]:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp:
        clock = Clock()
        box = Outbox(str(Path(tmp, "outbox.db")), clock=clock, **settings)  # type: ignore[arg-type]
        highest = 0
        started = time.perf_counter()
        for i in range(n):
            add(box, i)
            if i % 100 == 0:
                clock.now += 0.1
                box.maintain()
                highest = max(highest, box.disk_bytes())
        took = time.perf_counter() - started
        result = {
            "flood": name,
            "events": n,
            "max_disk_bytes_seen": highest,
            "disk_bytes_at_end": box.disk_bytes(),
            "pending": box.pending,
            "dropped": box.dropped,
            "refused": box.refused,
            "us_per_add": round(took / n * 1e6, 1),
        }
        box.close()
        result["disk_bytes_after_close"] = os.path.getsize(Path(tmp, "outbox.db"))
        return result


def floods() -> list[dict[str, object]]:
    return [
        _flood(
            "MESSAGEs with distinct Call-IDs, broker away (default bounds)",
            40000,
            lambda box, i: box.add(TOPIC, _payload(i), f"flood-{i}|1 MESSAGE|t"),
        ),
        _flood(
            "refused B/command results (capacity 10, refuse)",
            20000,
            lambda box, i: box.add("sipagent/porch/command/result", b'{"command":"x"}' * 20),
            capacity=10,
            when_full="refuse",
        ),
        _flood(
            "MESSAGEs of 3.5 KB (UDP's most), broker away (default bounds)",
            10000,
            lambda box, i: box.add(TOPIC, _payload(i) + b" " * 3200, f"big-{i}|1|t"),
        ),
    ]


def add_cost(n: int = 2000) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        durable = Outbox(str(Path(tmp, "outbox.db")), clock=Clock())
        started = time.perf_counter()
        for i in range(n):
            durable.add(TOPIC, _payload(i), f"c{i}|1|t")
        durable_us = (time.perf_counter() - started) / n * 1e6
        durable.close()
        Path(tmp, "a-file").write_text("")
        held = Outbox(str(Path(tmp, "a-file", "outbox.db")), clock=Clock())
        started = time.perf_counter()
        for i in range(n):
            held.add(TOPIC, _payload(i), f"c{i}|1|t")
        held_us = (time.perf_counter() - started) / n * 1e6
    return {"durable_add_us": round(durable_us, 1), "in_memory_add_us": round(held_us, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    results = {
        "memory": memory_per_event(),
        "full_disk_logging": log_lines_on_a_full_disk(),
        "floods": floods(),
        "add_cost": add_cost(),
    }
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
