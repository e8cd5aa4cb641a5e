"""How the SIP adapter finds names: host names looked up off the owner thread
(agent.adapters.sip.resolver), pjsip's nameservers (agent.adapters.sip.nameservers)."""

from __future__ import annotations

from agent.adapters.sip.nameservers import choose


def test_host_names_are_looked_up_off_the_calling_thread_and_taken_later() -> None:
    import threading

    from agent.adapters.sip.resolver import HostLookup

    woken = threading.Event()
    lookup = HostLookup(woken.set)
    assert lookup.start(["localhost", "localhost"])
    assert woken.wait(10)
    found = dict(lookup.take())
    assert "127.0.0.1" in found["localhost"]
    assert lookup.take() == []


def test_configured_nameservers_win_and_a_missing_resolv_conf_asks_the_machine(tmp_path):
    assert choose(("192.0.2.53",), str(tmp_path / "none")) == ["192.0.2.53"]
    assert choose(None, str(tmp_path / "none")) == ["127.0.0.1"]
    assert choose((), str(tmp_path / "none")) == []
