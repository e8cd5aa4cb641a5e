"""`sipagent version`, `--help` and `check-config` on a machine without the outside libraries.

A Pi owner checks a config before the pjsua2 binding is built; the subprocess below blocks
every outside library the adapters wrap, as if none were installed, whatever this venv has.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# sqlite3 and ctypes are part of Python itself: check-config opens the outbox to check it.
BLOCKED = ("pjsua2", "paho", "gpiozero", "systemd")
# Run `sipagent` with an import hook that refuses the libraries above.
RUNNER = f"""
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
        return None
sys.meta_path.insert(0, Refuse())
from agent.cli import main
sys.exit(main(sys.argv[1:]))
"""


def sipagent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_hook_really_blocks_the_binding() -> None:
    # Without this, a passing test below could mean only that the hook does nothing.
    done = subprocess.run(
        [sys.executable, "-c", RUNNER.replace("from agent.cli", "import pjsua2\nfrom agent.cli")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "blocked by the test" in done.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("version",), "sipagent "),
        (("--help",), "check-config"),
        (("send", "--help"), "--password-file"),
        (("totp", "--help"), "usage"),
        (("check-config", "examples/agent.toml"), "ok"),
        (("check-config", "--explain", "examples/agent.toml"), "sipagent/"),
    ],
)
def test_works_without_pjsua2_paho_gpiozero_systemd(args: tuple[str, ...], expected: str) -> None:
    done = sipagent(*args)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout


def test_a_bad_config_is_named_without_the_libraries(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[sip]\nregistrar = "sip:example.org"\nreg_expires = "soon"\n')
    done = sipagent("check-config", str(bad))
    assert done.returncode == 1
    assert "reg_expires" in done.stdout
    assert "blocked" not in done.stdout + done.stderr
