"""The reload's outcome as `sipagent status`, STATUS= and the log tell it (agent.core.reloader):
refused with a count of problems, applied, applied with parts waiting for a restart, and
what a config without a file (the embedded default) says.

Oracles: the README's reload section (one-line outcomes) and the `status` JSON's "reload"
object ({"at", "ok", "applied", "needs_restart", "problems"}).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest

from agent.config.load import parse_config
from agent.config.model import Config, ConfigError
from agent.core.reloader import Reloader

TEXT = """
[device]
id = "porch"
[sip]
uri = "sip:porch@192.0.2.1"
listen = "127.0.0.1:5070"
[access]
allow = ["sip:owner@192.0.2.9"]
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
max_pulse = "10s"
"""
AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")


class Parts:
    def __init__(self) -> None:
        self.configs: list[object] = []

    def reconfigure(self, config: object) -> None:
        self.configs.append(config)


class Files:
    """The config file's text, as the next reload will read it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def load(self, path: str) -> Config:
        assert path == "/etc/sipagent/agent.toml"
        return parse_config(self.text, source=path)


@pytest.fixture(autouse=True)
def _root_level() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


def reloader(text: str = TEXT) -> tuple[Reloader, Files, Parts, Parts]:
    files, agent, outputs = Files(text), Parts(), Parts()
    running = parse_config(text, source="/etc/sipagent/agent.toml")
    return Reloader(running, agent, outputs, files.load), files, agent, outputs


def test_the_embedded_default_has_nothing_to_reload() -> None:
    running = parse_config(TEXT, source="<embedded default>")
    agent = Parts()
    r = Reloader(running, agent, Parts(), lambda path: pytest.fail("nothing to read"))
    assert r.reload() == "reload refused (1 problem)"
    assert r.last is not None
    assert AT.match(str(r.last.pop("at")))
    assert r.last == {
        "ok": False,
        "problems": ["nothing to reload: the config is the <embedded default>"],
        "applied": [],
        "needs_restart": [],
    }
    assert agent.configs == []


def test_problems_are_counted_in_the_outcome() -> None:
    r, files, agent, outputs = reloader()
    files.text = TEXT.replace('max_pulse = "10s"', 'max_pulse = "never"').replace(
        "pin = 17", 'pin = "nope"'
    )
    outcome = r.reload()
    assert outcome == "reload refused (2 problems)"
    assert r.last is not None and r.last["ok"] is False and len(r.last["problems"]) == 2
    assert AT.match(str(r.last["at"]))
    assert (r.last["applied"], r.last["needs_restart"]) == ([], [])
    assert agent.configs == outputs.configs == []


def test_a_reload_without_changes_says_so() -> None:
    r, _, agent, outputs = reloader()
    assert r.last is None  # no reload yet: `status` shows none
    assert r.reload() == "reloaded (no change)"
    assert r.last is not None
    assert AT.match(str(r.last["at"]))
    assert {k: v for k, v in r.last.items() if k != "at"} == {
        "ok": True,
        "applied": [],
        "needs_restart": [],
        "problems": [],
    }
    assert agent.configs == [r.config]
    assert outputs.configs == [r.config.gpio.outputs]


def test_what_waits_for_a_restart_is_named() -> None:
    r, files, _, _ = reloader()
    files.text = TEXT.replace("5070", "5071").replace('id = "porch"', 'id = "gate"')
    outcome = r.reload()
    assert outcome == "reloaded; restart needed for device.id, device.name, sip.listen"
    assert r.last is not None and r.last["needs_restart"] == [
        "device.id",
        "device.name",
        "sip.listen",
    ]


def test_a_live_change_is_applied_and_the_log_level_with_it() -> None:
    r, files, agent, _ = reloader()
    files.text = TEXT.replace('max_pulse = "10s"', 'max_pulse = "20s"') + '[log]\nlevel = "debug"\n'
    assert r.reload() == "reloaded"
    assert r.last is not None and sorted(r.last["applied"]) == [
        "gpio.outputs.gate.max_pulse",
        "log.level",
    ]
    assert logging.getLogger().level == logging.DEBUG
    assert agent.configs == [r.config]


def test_a_refused_reload_keeps_the_last_good_config() -> None:
    r, files, _, _ = reloader()
    before = r.config
    files.text = "not toml ["
    assert r.reload() == "reload refused (1 problem)"
    assert r.config is before
    with pytest.raises(ConfigError):
        files.load("/etc/sipagent/agent.toml")
