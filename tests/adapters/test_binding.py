"""The installed binding's C API through ctypes (agent.adapters.sip.binding), on the real binding.

pjsua2 allows one endpoint per process, so each check runs in a process of its own. The
same test runs on whichever binding the venv has: the PyPI wheel (2.15.1) on CI, a binding
built from pjproject 2.17 by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.adapters.sip.binding import is_bundled
from agent.core.capabilities import version_key

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, socket, time
    import pjsua2 as pj
    from agent.adapters.sip.binding import CApi, defers_answers, detect
    from lab.bareendpoint import bare_endpoint

    ep = bare_endpoint()
    api = CApi.load()
    out = {"previous_limit": api.set_timers_per_poll(1000)}
    tc = pj.TransportConfig()
    tc.port = 0
    tc.boundAddress = "127.0.0.1"
    tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
    port = int(ep.transportGetInfo(tid).localName.rsplit(":", 1)[1])
    ep.libStart()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    me = sock.getsockname()[1]

    def message(i):
        return (f"MESSAGE sip:x@127.0.0.1:{port} SIP/2.0\\r\\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-{i}\\r\\n"
                f"From: <sip:t@127.0.0.1>;tag={i}\\r\\nTo: <sip:x@127.0.0.1>\\r\\n"
                f"Call-ID: {i}@t\\r\\nCSeq: 1 MESSAGE\\r\\nMax-Forwards: 70\\r\\n"
                "Content-Type: text/plain\\r\\nContent-Length: 2\\r\\n\\r\\nhi").encode()

    def answered(n, first):
        # n MESSAGEs: how many more transactions pjsip holds once all are answered
        before = api.transactions()
        for i in range(first, first + n):
            sock.sendto(message(i), ("127.0.0.1", port))
        got, deadline = 0, time.monotonic() + 30
        sock.settimeout(0.01)
        while got < n and time.monotonic() < deadline:
            ep.libHandleEvents(10)
            try:
                got += sock.recv(4000).startswith(b"SIP/2.0 200")
            except TimeoutError:
                pass
        return api.transactions() - before

    out["held_32s"] = answered(5, 0)  # answered statefully: they wait out Timer J
    api.set_timer_j(100)
    out["held_100ms"] = answered(5, 100)
    deadline = time.monotonic() + 30
    while api.transactions() > out["held_32s"] and time.monotonic() < deadline:
        ep.libHandleEvents(10)
    out["left"] = api.transactions()
    caps = detect(ep.libVersion().full, api)
    out.update(version=caps.pjproject, deferred=caps.deferred_responses,
               tls=caps.tls.text, defers=defers_answers(pj))
    ep.libDestroy()
    print("RESULT " + json.dumps(out), flush=True)
""")


def test_timer_j_and_the_transaction_count_are_reachable_on_the_installed_binding():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": f"{REPO}:{REPO / 'tests'}", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")]
    out = json.loads(line.removeprefix("RESULT "))
    assert out["previous_limit"] == 10  # pjsip's PJSIP_MAX_TIMED_OUT_ENTRIES
    assert out["held_32s"] == 5 and out["held_100ms"] == 5
    # Those answered with a 100 ms Timer J are gone; the first five still wait out 32 s.
    assert out["left"] == 5
    assert out["deferred"] is out["defers"]
    assert out["deferred"] is (version_key(out["version"]) >= (2, 16))
    assert out["tls"].startswith("OpenSSL")


@pytest.mark.parametrize(
    ("library", "bundled"),
    [
        ("/opt/v/lib/python3.11/site-packages/pjsua2_python.libs/libssl-cd1.so.1.0.2k", True),
        ("/usr/lib/x86_64-linux-gnu/libssl.so.3", False),
        ("/lib/aarch64-linux-gnu/libcrypto.so.3", False),
    ],
)
def test_a_tls_library_inside_the_bindings_site_directory_is_bundled(library, bundled):
    extension = "/opt/v/lib/python3.11/site-packages/pjsua2/_pjsua2.cpython-311.so"
    assert is_bundled(library, extension) is bundled


# SipStack.start as the agent runs it (agent.lean's stand-ins in place: Python's own hashlib
# would load OpenSSL's error texts first), then whether OpenSSL has them (ERR_LIB_SSL's name).
STACK_SCRIPT = textwrap.dedent("""
    import ctypes, json, sys
    from agent.lean import deferrable, deferred_imports
    with deferred_imports(deferrable(None)):
        from agent.config.load import load_config
        config = load_config(sys.argv[1])
        with deferred_imports(deferrable(config)):
            from agent.adapters.sip.binding import extension_path
            from agent.adapters.sip.stack import SipStack
    stack = SipStack(config.sip, uses_tls=config.uses_tls)
    stack.start()
    lib = ctypes.CDLL(extension_path())
    version = getattr(lib, "OpenSSL_version_num", None) or lib.SSLeay  # 1.1+, 1.0.x
    version.restype = ctypes.c_ulong
    number = version()
    name = lib.ERR_lib_error_string
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.c_ulong]
    text = name(20 << (23 if number >= 0x30000000 else 24))  # ERR_PACK(ERR_LIB_SSL, 0, 0)
    stack.shutdown()
    print("RESULT " + json.dumps({"version": number, "text": text and text.decode()}))
""")


@pytest.mark.parametrize("transport", ["udp", "tls"])
def test_openssl_error_texts_are_skipped_only_where_nothing_uses_tls(tmp_path, transport):
    config = tmp_path / "agent.toml"
    config.write_text(
        (REPO / "tests" / "golden" / "minimal.toml")
        .read_text()
        .replace("[sip]\n", f'[sip]\ntransport = "{transport}"\n')
    )
    result = subprocess.run(
        [sys.executable, "-c", STACK_SCRIPT, str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "STATE_DIRECTORY": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")]
    out = json.loads(line.removeprefix("RESULT "))
    # OpenSSL 1.1 and newer (a binding built on Debian: OpenSSL 3) load the texts when pjsip
    # starts, unless the agent asked them not to; the PyPI wheel's bundled 1.0.2 never does.
    loads_them = out["version"] >= 0x10100000
    expected = "SSL routines" if transport == "tls" and loads_them else None
    assert out["text"] == expected
