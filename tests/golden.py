"""Expected output kept as files (tests/golden/): what a person reads, exactly.

A golden file is the oracle for text a person reads (`check-config --explain`, `status`):
read it when it changes. `{version}` in a file stands for the agent's version.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from agent import __version__

GOLDEN = Path(__file__).with_name("golden")


def assert_golden(name: str, lines: list[str]) -> None:
    expected = (GOLDEN / name).read_text().replace("{version}", __version__).splitlines()
    if lines != expected:
        diff = "\n".join(difflib.unified_diff(expected, lines, name, "now", lineterm=""))
        raise AssertionError(f"{GOLDEN / name} differs (edit it if the change is meant):\n{diff}")
