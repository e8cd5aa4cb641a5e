"""systemd's notify protocol as the agent speaks it (agent.adapters.service.Notifier)."""

from __future__ import annotations

import pytest

from agent.adapters.service import Notifier


def test_notifier_appends_the_extra_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    sent: list[str] = []
    monkeypatch.setattr(notifier, "_send", sent.append)
    notifier.status_extra = lambda: "outbox 3"
    notifier.ready("SIP registered; MQTT connected")
    notifier.status("SIP registered; MQTT connected")  # unchanged: not sent again
    notifier.status_extra = lambda: "outbox 4"
    notifier.status("SIP registered; MQTT connected")
    assert sent == [
        "READY=1\nSTATUS=SIP registered; MQTT connected; outbox 3",
        "STATUS=SIP registered; MQTT connected; outbox 4",
    ]
