"""Import less (agent.lean): stand-ins for modules the configured agent never uses.

The memory figures are in the README (scripts/bench_memory.py); here, which modules a run
loads, by name, so a new import of something heavy shows up as a failing test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.cli import _service_command
from agent.lean import DeferredModule, deferrable, deferred_imports

REPO = Path(__file__).resolve().parents[2]
# Heavy modules nothing in a run with the example config needs (agent.lean's list, and
# what they would bring along).
NOT_LOADED = ("ssl", "_ssl", "hashlib", "_hashlib", "hmac", "email", "http.client",
              "urllib.request", "importlib.metadata", "zipfile", "statistics", "decimal",
              "colorzero", "subprocess", "bz2", "lzma", "tempfile", "difflib", "inspect",
              "ast", "dis", "traceback", "platform", "argparse")  # fmt: skip


def test_a_deferred_module_is_imported_on_first_use_and_then_is_the_real_one():
    name = "colorsys"  # small, pure, and not imported by anything here
    sys.modules.pop(name, None)
    with deferred_imports({name: {}}):
        import colorsys

        assert isinstance(colorsys, DeferredModule) and not colorsys.loaded
        assert colorsys.rgb_to_hsv(1, 0, 0) == (0, 1, 1)  # the first use imports it
        assert colorsys.loaded and "rgb_to_yiq" in vars(colorsys)
    assert not isinstance(sys.modules[name], DeferredModule)


def test_from_import_of_an_offered_function_does_not_load_the_module():
    sys.modules.pop("colorsys", None)
    calls = []

    def hls(*args: float) -> tuple[float, float, float]:
        calls.append(args)
        return (0.0, 0.0, 0.0)

    with deferred_imports({"colorsys": {"rgb_to_hls": hls}}):
        from colorsys import rgb_to_hls

        assert rgb_to_hls(1, 1, 1) == (0.0, 0.0, 0.0) and calls
        assert not sys.modules["colorsys"].loaded  # type: ignore[attr-defined]
    sys.modules.pop("colorsys", None)


def test_an_already_imported_module_is_left_alone():
    import json as real

    with deferred_imports({"json": {}}):
        assert sys.modules["json"] is real


def test_ssl_is_deferred_only_when_mqtt_tls_is_off():
    from agent.config.load import parse_config

    base = '[device]\nid = "x"\n[sip]\nuri = "sip:x@127.0.0.1"\n[mqtt]\nhost = "h"\n'
    assert "ssl" in deferrable(parse_config(base))
    assert "ssl" not in deferrable(parse_config(base + "tls = true\n"))
    assert "ssl" not in deferrable(None)  # before the config is read: not decided yet


def test_building_the_agent_for_the_example_config_loads_none_of_them(tmp_path):
    example = (REPO / "examples" / "agent.toml").read_text()
    config = tmp_path / "agent.toml"
    config.write_text(example.replace('pin_factory = "auto"', 'pin_factory = "mock"'))
    script = textwrap.dedent(f"""
        import json, sys
        from agent.lean import deferrable, deferred_imports
        with deferred_imports(deferrable(None)):  # as agent.cli.main does, first of all
            from agent.config.load import load_config
            config = load_config({str(config)!r})
            with deferred_imports(deferrable(config)):
                from agent.loop import Runner
                Runner(config)
        loaded = [n for n in {NOT_LOADED!r} if n in sys.modules
                  and getattr(sys.modules[n], "loaded", True)]
        print(json.dumps(loaded))
    """)
    env = {"PYTHONPATH": str(REPO), "STATE_DIRECTORY": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.splitlines()[-1])
    # inspect, typically: a dataclass without a docstring makes dataclasses ask for its
    # signature, a Python callback handed to gpiozero makes it inspect one (agent.adapters.inputs).
    assert loaded == [], f"loaded at start for nothing: {loaded}"


def test_the_stand_ins_own_functions_answer_as_the_real_ones():
    import functools
    import inspect
    import operator
    import platform

    from agent.lean import _isbuiltin, _system

    samples = [len, print, operator.call, functools.partial(len), lambda: None, _isbuiltin,
               [].append, object(), str.join, None]  # fmt: skip
    assert [_isbuiltin(x) for x in samples] == [inspect.isbuiltin(x) for x in samples]
    assert _system() == platform.system()


@pytest.mark.parametrize(
    ("args", "service"),
    [
        (["run"], (None,)),
        (["run", "--config", "/etc/sipagent/agent.toml"], ("/etc/sipagent/agent.toml",)),
        (["run", "--config=a.toml"], ("a.toml",)),
        (["run", "--config"], None),  # argparse says what is missing
        (["run", "--config="], None),
        (["run", "--config", "-h"], None),
        (["run", "--help"], None),
        (["run", "--config", "a", "b"], None),
        (["check-config", "a.toml"], None),
        ([], None),
    ],
)
def test_the_service_command_line_is_read_without_argparse(args, service):
    assert _service_command(args) == service
