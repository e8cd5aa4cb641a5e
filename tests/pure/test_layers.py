"""The architecture's rules, held: read from the source with `ast`, nothing imported.

Layers are folders (README "Architecture"): agent/core decides, agent/adapters wraps one
outside library per module, agent/config is the model (a leaf) and its readers, and the
entry points sit at the top. Every import counts, inside functions and under TYPE_CHECKING
too: a type the core names is a dependency all the same.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "agent"
ENTRY_POINTS = {"__init__", "__main__", "cli", "loop", "inbox", "lean"}
LAYERS = {"core", "adapters", "config"}
# What the core must never reach, not even through another module of ours.
OUTSIDE = {"pjsua2", "paho", "gpiozero", "systemd", "sqlite3", "ctypes"}
# Nor do its own I/O: threads, sockets, signals and processes belong to adapters.
IO = {"socket", "threading", "signal", "subprocess"}
MODEL = "agent.config.model"
# The one module of ours the model may import: a leaf of the core (frozen records).
RECORD = "agent.core.record"


def module_name(path: Path) -> str:
    parts = path.relative_to(AGENT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(AGENT.rglob("*.py"))}


def imported(module: str) -> Iterator[str]:
    """Every module name `module` imports (absolute; ours resolved to a module we have)."""
    tree = ast.parse(MODULES[module].read_text())
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: relative import (write it absolute)"
            assert node.module is not None
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[0] != "agent":
                yield name
                continue
            while name not in MODULES:  # `from agent.core import commands`: a module;
                name = name.rpartition(".")[0]  # `from agent.core.x import y`: agent.core.x
            if name != module:
                yield name


def ours(module: str) -> set[str]:
    return {name for name in imported(module) if name in MODULES}


def libraries(module: str) -> set[str]:
    return {name.split(".")[0] for name in imported(module) if name not in MODULES}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or parts[-1] in LAYERS else "top"


def reached(module: str) -> set[str]:
    """`module` and every module of ours it imports, directly or not."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += ours(name)
    return seen


def test_agent_is_six_files_and_three_folders() -> None:
    files = {p.stem for p in AGENT.glob("*.py")}
    folders = {p.name for p in AGENT.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == LAYERS
    assert files <= ENTRY_POINTS, f"{sorted(files - ENTRY_POINTS)}: put each in its layer"


def test_each_layer_states_its_rule_where_it_starts() -> None:
    for name in LAYERS:
        doc = ast.get_docstring(ast.parse((AGENT / name / "__init__.py").read_text()))
        assert doc and "Rule" in doc, f"agent/{name}/__init__.py: say the layer's rule"


def test_no_import_cycles_anywhere_in_agent() -> None:
    # Depth-first; a module met again while still on the path closes a cycle.
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = "open"
        path.append(name)
        for dep in sorted(ours(name)):
            if state.get(dep) == "open":
                cycle = [*path[path.index(dep) :], dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[name] = "done"

    for name in MODULES:
        if name not in state:
            visit(name)


def test_the_core_imports_nothing_outside_not_even_through_others() -> None:
    for name in (m for m in MODULES if layer(m) == "core"):
        wrong = {m for m in ours(name) if layer(m) != "core" and m not in (MODEL, "agent")}
        assert not wrong, f"{name} imports {sorted(wrong)}: the core reaches them through ports"
        for via in reached(name):
            found = libraries(via) & (OUTSIDE | IO)
            assert not found, f"{name} reaches {sorted(found)} through {via}"


def test_the_config_model_is_a_leaf() -> None:
    assert ours(MODEL) <= {RECORD}
    assert ours(RECORD) == set()


def test_config_readers_use_the_model_and_the_core_only() -> None:
    for name in (m for m in MODULES if layer(m) == "config"):
        wrong = {m for m in ours(name) if layer(m) not in ("config", "core") and m != "agent"}
        assert not wrong, f"{name} imports {sorted(wrong)}"


def test_adapters_import_the_core_and_the_config_model_never_each_other() -> None:
    for name in (m for m in MODULES if layer(m) == "adapters"):
        # An adapter may span a folder of its own (agent/adapters/sip, .../outbox).
        own = ".".join(name.split(".")[:3])
        for dep in ours(name):
            mine = dep == own or dep.startswith(own + ".")
            assert mine or layer(dep) == "core" or dep in (MODEL, "agent"), f"{name} imports {dep}"


def test_every_adapter_module_wraps_at_most_one_outside_library() -> None:
    for name in (m for m in MODULES if layer(m) == "adapters"):
        found = libraries(name) & OUTSIDE
        if "pjsua2" in found:
            found -= {"ctypes"}  # pjsip's own C functions: the same library, another door
        assert len(found) <= 1, f"{name}: {sorted(found)}"


TESTS = AGENT.parent / "tests"


def imported_test_modules(source: str) -> set[str]:
    """What in `source` names a test module (`test_*`): imported, or imported from."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + [alias.name for alias in node.names]
        else:
            continue
        found |= {n for n in names if any(p.startswith("test_") for p in n.split("."))}
    return found


def test_no_test_module_imports_another() -> None:
    # A helper two tests share lives in the lab (lab/rigs.py, lab/agentproc.py, ...): importing
    # a test module runs its collection-time code and hides the helper where nobody looks.
    assert imported_test_modules("from test_core import CONFIG\nimport json") == {"test_core"}
    assert imported_test_modules("from lab.rigs import AgentRig") == set()
    wrong = {
        str(path.relative_to(TESTS)): sorted(found)
        for path in sorted(TESTS.rglob("*.py"))
        if (found := imported_test_modules(path.read_text()))
    }
    assert not wrong, f"test modules imported (move what they share to lab/): {wrong}"
