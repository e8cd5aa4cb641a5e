"""Where the agent keeps its state: the outbox database and the used one-time codes.

The state directory is the directory of `outbox.path`; without that setting it is
systemd's StateDirectory= ($STATE_DIRECTORY), else /var/lib/sipagent when this user may
write there, else the user's own state directory (a demo run from a terminal).
"""

from __future__ import annotations

import os

SYSTEM_STATE_DIR = "/var/lib/sipagent"
DB_NAME = "outbox.db"


def default_path(environ: dict[str, str] | None = None) -> str:
    """Where the outbox lives when the config does not say."""
    env = os.environ if environ is None else environ
    state_dir = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state_dir:
        return os.path.join(state_dir, DB_NAME)
    system = SYSTEM_STATE_DIR
    parent = os.path.dirname(system)
    if os.access(system, os.W_OK) or (not os.path.exists(system) and os.access(parent, os.W_OK)):
        return os.path.join(SYSTEM_STATE_DIR, DB_NAME)
    xdg = env.get("XDG_STATE_HOME") or os.path.join(env.get("HOME", "/tmp"), ".local", "state")
    return os.path.join(xdg, "sipagent", DB_NAME)


def outbox_path(configured: str | None, environ: dict[str, str] | None = None) -> str:
    return configured or default_path(environ)


def state_dir(configured_outbox: str | None, environ: dict[str, str] | None = None) -> str:
    """The directory holding the outbox and the other state files."""
    return os.path.dirname(os.path.abspath(outbox_path(configured_outbox, environ)))
