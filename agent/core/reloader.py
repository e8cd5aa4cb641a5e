"""The reload itself (owner thread): read the config file again, let agent.core.reload decide what
changes live, hand it to the parts, and say what was not applied.

A config with problems changes nothing: the agent runs on with what it had, and the log, the
STATUS= line and `sipagent status` say why. Secrets come from systemd's credentials, which
systemd copies at start: a changed password or TOTP secret file needs a restart.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from agent.config.model import Config, ConfigError, OutputConfig

log = logging.getLogger(__name__)


class Reconfigurable(Protocol):
    def reconfigure(self, config: Config) -> None: ...


class Limits(Protocol):
    def reconfigure(self, outputs: Sequence[OutputConfig]) -> None: ...


class Reloader:
    def __init__(
        self,
        config: Config,
        agent: Reconfigurable,
        outputs: Limits,
        load: Callable[[str], Config],
    ) -> None:
        self.config = config
        self._agent = agent
        self._outputs = outputs
        self._load = load
        self.last: dict[str, Any] | None = None  # the last reload's outcome, for `status`

    def reload(self) -> str:
        """Reload now; returns a one-line outcome for STATUS= and the log."""
        at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        source = self.config.source
        if source.startswith("<"):  # "<embedded default>": no file to read again
            return self._refused(at, [f"nothing to reload: the config is the {source}"])
        try:
            loaded = self._load(source)
        except ConfigError as err:
            return self._refused(at, list(err.problems))
        # Imported at the first reload: most services are never reloaded (agent.lean).
        from agent.core.reload import plan_reload

        plan = plan_reload(self.config, loaded)
        self.config = plan.config
        self._outputs.reconfigure(plan.config.gpio.outputs)
        self._agent.reconfigure(plan.config)
        logging.getLogger().setLevel(plan.config.log.level.upper())
        self.last = {
            "at": at,
            "ok": True,
            "applied": list(plan.applied),
            "needs_restart": list(plan.needs_restart),
            "problems": [],
        }
        applied = ", ".join(plan.applied) or "no change"
        log.info("config %s reloaded: applied %s", source, applied)
        if plan.needs_restart:
            log.warning(
                "config %s: not applied until a restart (systemctl restart sipagent): %s",
                source,
                ", ".join(plan.needs_restart),
            )
            return f"reloaded; restart needed for {', '.join(plan.needs_restart)}"
        return "reloaded" if plan.changed else "reloaded (no change)"

    def _refused(self, at: str, problems: list[str]) -> str:
        for line in problems:
            log.error("reload refused: %s", line)
        self.last = {"at": at, "ok": False, "problems": problems}
        self.last |= {"applied": [], "needs_restart": []}
        return f"reload refused ({len(problems)} problem{'s' if len(problems) != 1 else ''})"
