#!/usr/bin/env python3
"""Mutation testing of the pure layer: how many of mutmut's mutants the fast tests kill.

    .venv/bin/python scripts/mutation.py                  # the pure layer (README: how long)
    .venv/bin/python scripts/mutation.py agent/core/totp.py    # some modules only
    .venv/bin/python scripts/mutation.py --list           # what it would mutate, and why

mutmut (PyPI, `pip install '.[mutation]'`) changes one small thing at a time in the code (`<`
into `<=`, a string into "XX…XX", an argument into None) and runs the tests that cover the
function it changed; a mutant no test notices "survives". It runs in a scratch copy of the
checkout (mutmut writes a mutants/ tree beside the code; the copy holds the lab/ package and
tests/golden.py, which tests import) with the tests that `pytest tests/pure tests/adapters -m
"not lab and not slow"` selects: the pure and in-process ones, seconds in all.

Survivors that were looked at and left alone are listed, each with its reason, in
scripts/mutation-survivors.txt (the file says how). The script prints every other survivor
as a diff, the score, and exits 1 when the score is under --min-score or a survivor is new.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXPLAINED = REPO / "scripts" / "mutation-survivors.txt"

# The pure layer (issue 15): the folder agent/core/, whole: decisions with no I/O. A module is
# pure when nothing it imports, even through other modules of ours, reaches one of OUTSIDE
# (`--list` checks; tests/pure/test_layers.py holds it for every test run).
CORE_FOLDER = REPO / "agent" / "core"
OUTSIDE = {"pjsua2", "paho", "gpiozero", "systemd", "sqlite3", "ctypes", "socket", "threading"}

# The pure tests and the adapters' in-process ones (tests/conftest.py marks the others `lab`).
# tests/system is left out: its tests that are not `lab` still start agent processes; so are
# the pure tests that start `sipagent` (in that process agent.lean defers importlib.metadata,
# which a mutated module's trampoline needs when it imports mutmut).
TEST_SELECTION = [
    *("tests/pure", "tests/adapters", "-m", "not lab and not slow"),
    "--ignore=tests/pure/test_cli_without_libraries.py",
    "--deselect=tests/pure/test_explain.py::test_the_command_line_prints_it",
]
# Log calls are not mutated (unless --with-log-calls): their words are for people, and a
# changed word is no broken agent. The log lines that carry decisions (who was refused and
# why, journald's SENDER/COMMAND fields) are pinned by caplog tests all the same. The lines
# a LogThrottle writes (`self._quiet.warning(kind, ...)`, agent.core.lograte) are log calls too.
LOG_CALLS = r"^\s*(log|self\._log|self\._quiet)\.(debug|info|warning|error|exception|log)\("


def targets(requested: list[str]) -> list[str]:
    """Paths (relative to the checkout) of the modules to mutate."""
    if requested:
        return [str(Path(p)) for p in requested]
    return sorted(str(p.relative_to(REPO)) for p in CORE_FOLDER.rglob("*.py"))


def outside_imports(module: str, seen: set[str] | None = None) -> set[str]:
    """The outside libraries `module` (agent.x) reaches through its imports, as `via -> lib`."""
    seen = set() if seen is None else seen
    path = REPO / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = REPO / module.replace(".", "/") / "__init__.py"
    if not path.exists() or module in seen:
        return set()
    seen.add(module)
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    typing_only = {  # `if TYPE_CHECKING:` imports are for the type checker, never run
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for n in ast.walk(block)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] in OUTSIDE:
                found.add(name.split(".")[0])
            elif name.startswith("agent."):
                reached = outside_imports(name, seen)
                found |= {f"{name} -> {lib.split(' -> ')[-1]}" for lib in reached}
    return found


@dataclass
class Survivor:
    name: str  # mutmut's name of the mutant
    status: str  # survived, no tests, timeout, suspicious
    path: str
    diff: str
    changed: str  # the mutated line(s), stripped (a deletion: "(deleted) " and the old ones)

    def key(self) -> str:
        return f"{self.path}: {self.changed}"


def load_explained() -> dict[str, str]:
    explained: dict[str, str] = {}
    for line in EXPLAINED.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, why = line.rpartition("  # ")  # the code itself may hold "  # "
            explained[key.strip()] = why.strip()
    return explained


def scratch_copy(scratch: Path, paths: list[str], log_calls: bool) -> None:
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "mutants", "__pycache__", ".hypothesis", ".*_cache", "*.egg-info"
    )
    shutil.copytree(REPO, scratch, ignore=ignore, dirs_exist_ok=True)
    also = sorted({p.split("/")[0] for p in os.listdir(REPO)} - {"agent", "tests", ".git"})
    config = {
        "source_paths": ["agent/"],
        "only_mutate": paths,
        # What the tests read besides the code and the tests (the lab package, examples, scripts).
        "also_copy": [a for a in also if not a.startswith(".")],
        "pytest_add_cli_args_test_selection": TEST_SELECTION,
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-q"],
        "do_not_mutate_patterns": [] if log_calls else [LOG_CALLS],
    }
    with (scratch / "pyproject.toml").open("a") as f:
        f.write("\n[tool.mutmut]\n")
        for key, value in config.items():
            f.write(f"{key} = {json.dumps(value)}\n")
    for path in paths:
        leave_protocols_alone(scratch / path)


def leave_protocols_alone(path: Path) -> None:
    """Mark each Protocol class of the copy at `path` for mutmut to leave whole.

    A Protocol (a port) only declares: its stubs never run, so their mutants cannot be
    killed, and the trampolines mutmut would add to the class are members that the ports'
    contract test (tests/adapters/test_contracts.py) would look for in every fake and adapter.
    The pragma ends the class's header line: no line moves, and the source stays as it is.
    """
    lines = path.read_text().splitlines(keepends=True)
    for node in ast.walk(ast.parse("".join(lines))):
        bases = [ast.unparse(b) for b in node.bases] if isinstance(node, ast.ClassDef) else []
        if any(b == "Protocol" or b.endswith(".Protocol") for b in bases):
            first = node.body[0].lineno - 1  # the header ends on a line before its body
            end = next(i for i in range(first - 1, node.lineno - 2, -1) if ":" in lines[i])
            lines[end] = lines[end].rstrip("\n") + "  # pragma: no mutate block\n"
    path.write_text("".join(lines))


def mutmut(scratch: Path, *args: str, log: Path | None = None) -> str:
    command = [sys.executable, "-m", "mutmut", *args]
    if log is None:
        done = subprocess.run(command, cwd=scratch, capture_output=True, text=True, check=False)
        return done.stdout
    with log.open("w") as out:
        done = subprocess.run(command, cwd=scratch, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = log.read_text(errors="replace").replace("\r", "\n").splitlines()[-30:]
        sys.exit("mutmut failed:\n" + "\n".join(tail))
    return ""


# The mutants left, with their diffs, from mutmut's own records: one process for all of them
# (`mutmut show` a process each took 10 min for 1300 survivors on 2 busy cores).
LEFT = """
import json
from mutmut.__main__ import (
    SourceFileMutationData, get_diff_for_mutant, status_by_exit_code, walk_mutatable_files
)
left = []
for path in walk_mutatable_files():
    data = SourceFileMutationData(path=path)
    data.load()
    for name, code in data.exit_code_by_key.items():
        status = status_by_exit_code[code]
        if status not in ("killed", "timeout"):  # a mutant that hangs the tests is caught too
            left.append((name, status, get_diff_for_mutant(name, path=data.path)))
print(json.dumps(left))
"""


def survivors(scratch: Path) -> list[Survivor]:
    command = [sys.executable, "-c", LEFT]
    done = subprocess.run(command, cwd=scratch, capture_output=True, text=True, check=True)
    found = []
    for name, status, diff in json.loads(done.stdout):
        path = next((m[1] for m in re.finditer(r"^\+\+\+ (\S+)", diff, re.M)), "?")
        changed = " / ".join(_lines(diff, "+"))
        if not changed:  # a line deleted: named by what was there
            changed = "(deleted) " + " / ".join(_lines(diff, "-"))
        found.append(Survivor(name, status, path, diff, changed))
    return found


def _lines(diff: str, sign: str) -> list[str]:
    """The added ("+") or removed ("-") lines of a diff, stripped, without its file header."""
    return [d[1:].strip() for d in diff.splitlines() if d[:1] == sign and d[1:2] != sign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="paths of modules to mutate (default: all)")
    parser.add_argument("--list", action="store_true", help="list the targets and their imports")
    parser.add_argument("--min-score", type=float, default=90.0, help="percent killed, at least")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it")
    parser.add_argument("--with-log-calls", action="store_true", help="mutate log calls too")
    args = parser.parse_args()
    paths = targets(args.modules)
    if args.list:
        for path in paths:
            module = path.removesuffix(".py").replace("/", ".")
            outside = outside_imports(module)
            print(f"{path:32} {'IMPURE: ' + ', '.join(sorted(outside)) if outside else 'pure'}")
        print(f"tests: pytest {' '.join(TEST_SELECTION)}")
        return 0
    try:
        import mutmut as _  # noqa: F401
    except ImportError:
        sys.exit("mutmut is not installed: .venv/bin/pip install '.[mutation]'")
    started = time.monotonic()
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="sipagent-mutation-"))
    shutil.rmtree(scratch / "mutants", ignore_errors=True)
    scratch_copy(scratch, paths, args.with_log_calls)
    log = scratch / "mutmut.log"
    print(f"mutating {len(paths)} modules in {scratch} (mutmut's output: {log})", flush=True)
    mutmut(scratch, "run", "--max-children", str(args.jobs), log=log)
    mutmut(scratch, "export-cicd-stats")
    stats = json.loads((scratch / "mutants" / "mutmut-cicd-stats.json").read_text())
    left = survivors(scratch)
    explained = load_explained()
    new = [s for s in left if s.key() not in explained]
    total, killed = stats["total"], stats["killed"] + stats["timeout"]
    score = 100.0 * killed / total if total else 100.0
    for s in new:
        print(f"\n{s.status}: {s.name}\n{s.diff}")
    reasons: dict[str, int] = {}
    for s in left:
        if s.key() in explained:
            why = explained[s.key()].split(":")[0]
            reasons[why] = reasons.get(why, 0) + 1
    minutes = (time.monotonic() - started) / 60
    print(
        f"\n{total} mutants of {len(paths)} modules: {killed} killed ({score:.1f} %), "
        f"{len(left)} left: {len(left) - len(new)} explained, {len(new)} not; "
        f"{minutes:.1f} min with {args.jobs} jobs"
    )
    for why, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print(f"  {count:4} {why}")
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0 if score >= args.min_score and not new else 1


if __name__ == "__main__":
    sys.exit(main())
