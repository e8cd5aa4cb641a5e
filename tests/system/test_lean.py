"""Import less (agent.lean): stand-ins for modules the configured agent never uses.

The memory figures are in the README (scripts/bench_memory.py); here, which modules a run
loads, by name, so a new import of something heavy shows up as a failing test.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.cli import _service_command
from agent.lean import (
    CLASS_MODULES,
    DeferredModule,
    _idna_encode,
    _lazy_class,
    deferrable,
    deferred_imports,
)

REPO = Path(__file__).resolve().parents[2]
# Heavy modules nothing in a run with the example config needs (agent.lean's list, and
# what they would bring along).
NOT_LOADED = ("ssl", "_ssl", "hashlib", "_hashlib", "hmac", "email", "http.client",
              "urllib.request", "importlib.metadata", "zipfile", "statistics", "decimal",
              "colorzero", "subprocess", "bz2", "lzma", "tempfile", "difflib", "inspect",
              "ast", "dis", "traceback", "platform", "argparse", "xml.etree.ElementTree",
              "pyexpat", "concurrent.futures", "encodings.idna", "stringprep",
              "gpiozero.boards", "gpiozero.spi_devices", "gpiozero.internal_devices",
              "gpiozero.fonts", "agent.core.status_report", "agent.core.reload", "textwrap",
              "random", "agent.adapters.sip.tcp", "agent.adapters.sip.bpf",
              "agent.core.connections", "agent.adapters.sip.hops",
              "agent.adapters.sip.dns", "agent.core.codes",
              "tomllib", "tomllib._parser")  # fmt: skip
# Loaded only where the pjsua2 binding imports them itself (the PyPI wheel does).
NOT_LOADED_UNLESS_THE_BINDING_DOES = ("pathlib", "urllib.parse")


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


def test_a_forgotten_package_is_freed_and_imports_again_when_asked():
    # In a fresh interpreter: here, other test modules hold tomllib themselves.
    script = textwrap.dedent("""
        import json, sys, weakref
        from agent.lean import forget
        from agent.config.load import parse_config
        parse_config('[device]\\nid = "a"\\n[sip]\\nuri = "sip:a@b"\\n[presence]\\nwatchers = []')
        parser = weakref.ref(sys.modules["tomllib._parser"])
        forget("tomllib")
        freed = parser() is None
        listed = [n for n in sys.modules if n.split(".")[0] == "tomllib"]
        again = parse_config('[device]\\nid = "b"\\n[sip]\\nuri = "sip:b@c"').device.id
        print(json.dumps([freed, listed, again]))
    """)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    assert _run_python(script, env) == [True, [], "b"]


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


def _run_python(script: str, env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_building_the_agent_for_the_example_config_loads_none_of_them(tmp_path):
    example = (REPO / "examples" / "agent.toml").read_text()
    config = tmp_path / "agent.toml"
    config.write_text(example.replace('pin_factory = "auto"', 'pin_factory = "mock"'))
    env = {"PYTHONPATH": str(REPO), "STATE_DIRECTORY": str(tmp_path), "PATH": "/usr/bin:/bin"}
    # What the binding imports itself, alone: the PyPI wheel's __init__ imports pathlib.
    by_binding = _run_python(
        textwrap.dedent(f"""
            import json, sys, pjsua2
            pjsua2.Endpoint  # the wheel loads its extension on first use
            print(json.dumps([n for n in {NOT_LOADED_UNLESS_THE_BINDING_DOES!r}
                              if n in sys.modules]))
        """),
        env,
    )
    names = NOT_LOADED + tuple(n for n in NOT_LOADED_UNLESS_THE_BINDING_DOES if n not in by_binding)
    script = textwrap.dedent(f"""
        import json, socket, sys
        from agent.lean import deferrable, deferred_imports
        with deferred_imports(deferrable(None)):  # as agent.cli.main does, first of all
            from agent.cli import _load_for_run
            config = _load_for_run({str(config)!r})
            with deferred_imports(deferrable(config)):
                from agent.loop import Runner
                Runner(config)
        # What the SIP adapter builds after libStart, for a registrar given by address (the
        # lab's; a name needs the SRV machinery: tests/system/test_dns_srv.py).
        from dataclasses import replace
        from types import SimpleNamespace
        from agent.adapters.sip.net import Recovery
        by_address = replace(config.sip, registrar="sip:192.0.2.1", proxy="sip:192.0.2.1;lr")
        Recovery.create(by_address, print, SimpleNamespace(found=print))
        socket.getaddrinfo("localhost", 1883)  # what paho does to connect, later
        loaded = [n for n in {names!r} if n in sys.modules
                  and getattr(sys.modules[n], "loaded", True)]
        print(json.dumps(loaded))
    """)
    loaded = _run_python(script, env)
    # inspect, typically: a dataclass without a docstring makes dataclasses ask for its
    # signature, a Python callback handed to gpiozero makes it inspect one (agent.adapters.inputs).
    assert loaded == [], f"loaded at start for nothing: {loaded}"


def test_a_message_kept_in_the_outbox_loads_no_openssl_for_its_key(tmp_path):
    # The dedupe key is BLAKE2, built into CPython: hashlib would load OpenSSL's libcrypto
    # (3 MB resident where the binding does not bring it) on the first message, for good.
    script = textwrap.dedent(f"""
        import json, sys
        from agent.lean import deferrable, deferred_imports
        with deferred_imports(deferrable(None)):
            from agent.adapters.outbox.store import Outbox, _key
            box = Outbox({str(tmp_path / "outbox.db")!r})
            first = box.add("t", b"one", "call-1;1;tag")
            again = box.add("t", b"one", "call-1;1;tag")
        loaded = [n for n in ("hashlib", "_hashlib") if n in sys.modules
                  and getattr(sys.modules[n], "loaded", True)]
        print(json.dumps([first.id is not None, again.duplicate, _key("x").hex(), loaded]))
    """)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    kept, duplicate, key, loaded = _run_python(script, env)
    assert (kept, duplicate, loaded) == (True, True, [])
    assert key == hashlib.blake2b(b"x", digest_size=16).hexdigest()  # the key kept on disk


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


@given(st.text(alphabet=st.sampled_from("ab.-Zü0\x00 "), max_size=140))
def test_the_idna_codec_answers_as_encodings_idna(text):
    import encodings.idna

    def outcome(encode):
        try:
            return encode(text)
        except UnicodeError as err:
            return type(err)

    assert outcome(_idna_encode) == outcome(encodings.idna.Codec().encode)
    assert _idna_encode("a" * 63 + ".example.org") == (("a" * 63 + ".example.org").encode(), 75)


def test_python_encodes_host_names_with_the_stand_in_and_the_rest_with_encodings_idna():
    script = textwrap.dedent("""
        import json, sys
        from agent.lean import deferrable, deferred_imports
        with deferred_imports(deferrable(None)):
            pass
        seen = []
        seen.append("localhost.".encode("idna"))
        seen.append("encodings.idna" in sys.modules)
        seen.append("bücher.example".encode("idna"))
        seen.append(b"xn--bcher-kva.example".decode("idna"))
        seen.append("encodings.idna" in sys.modules)
        print(json.dumps([x.decode() if isinstance(x, bytes) else x for x in seen]))
    """)
    assert _run_python(script, {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}) == [
        "localhost.",
        False,
        "xn--bcher-kva.example",
        "bücher.example",
        True,
    ]


def test_a_class_stand_in_is_the_class_for_calls_attributes_and_isinstance():
    sys.modules.pop("fractions", None)
    with deferred_imports({"fractions": {"Fraction": _lazy_class("fractions", "Fraction")}}):
        from fractions import Fraction

        assert not sys.modules["fractions"].loaded  # type: ignore[attr-defined]
        # Called inside the block too, while the stand-in is still in sys.modules.
        half = Fraction(1, 2)
        assert isinstance(half, Fraction) and not isinstance(0.5, Fraction)
        assert issubclass(type(half), Fraction)
        assert Fraction.from_float(0.25) == Fraction(1, 4)

        class Exact(Fraction):  # a subclass of the stand-in derives from the real class
            pass

    import fractions

    assert type(half) is fractions.Fraction
    assert Exact.__mro__[1] is fractions.Fraction and Exact(3, 6) == half


def test_a_forwarder_called_inside_the_block_imports_the_real_module():
    sys.modules.pop("statistics", None)
    with deferred_imports({"statistics": deferrable(None)["statistics"]}):
        from statistics import median

        assert median([3, 1, 2]) == 2  # once looped back to its own stand-in


def test_gpiozero_devices_the_agent_does_not_use_still_work_when_used():
    script = textwrap.dedent("""
        import json, sys
        from agent.lean import deferrable, deferred_imports
        with deferred_imports(deferrable(None)):
            import gpiozero
            from gpiozero.pins.mock import MockFactory
            before = [n for n in %r if getattr(sys.modules[n], "loaded", True)]
        board = gpiozero.LEDBoard(2, 3, pin_factory=MockFactory())
        board.on()
        assert isinstance(board, gpiozero.CompositeOutputDevice) and board.value == (1, 1)
        assert gpiozero.boards.LEDBoard is type(board)
        print(json.dumps([before, sorted(n for n in %r if n in sys.modules)]))
    """) % (sorted(CLASS_MODULES), sorted(CLASS_MODULES))
    before, after = _run_python(script, {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert before == []  # stand-ins while gpiozero was imported
    assert "gpiozero.boards" in after  # the real module, once a board was made
