"""`check-config`'s look at the state directory: what it can tell is unusable, as warnings.

The agent runs with an unusable state directory (events are held in memory, one-time codes
are refused; agent.adapters.outbox.store, agent.adapters.codestore), so these are warnings, not
config errors. Each
line names the key: `outbox.path: /var/lib/sipagent is on a read-only file system ...`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3

from agent.config.model import Config
from agent.config.statedir import DB_NAME, SYSTEM_STATE_DIR
from agent.core.sizes import format_size

SQLITE_HEADER = b"SQLite format 3\0"


def service_outbox_path(config: Config, environ: dict[str, str] | None = None) -> str:
    """The outbox the service will use: outbox.path, else its StateDirectory."""
    env = os.environ if environ is None else environ
    if config.outbox.path:
        return config.outbox.path
    state = env.get("STATE_DIRECTORY", "").split(":")[0] or SYSTEM_STATE_DIR
    return os.path.join(state, DB_NAME)


def state_warnings(config: Config, environ: dict[str, str] | None = None) -> list[str]:
    """What is wrong with the state directory and the outbox file, as far as we can tell."""
    if config.mqtt is None and not config.access.require_code:
        return []  # nothing is kept on disk: no outbox, no used one-time codes
    path = service_outbox_path(config, environ)
    key = "outbox.path"
    consequence = "the agent runs, but keeps events in memory only and refuses one-time codes"
    directory = os.path.dirname(os.path.abspath(path))
    existing = directory
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return [f"{key}: {existing} is not a directory ({consequence})"]
    try:
        fs = os.statvfs(existing)
    except OSError as err:
        return [f"{key}: cannot look at {existing}: {err.strerror} ({consequence})"]
    if fs.f_flag & os.ST_RDONLY:
        return [f"{key}: {existing} is on a read-only file system ({consequence})"]
    if os.geteuid() != 0 and not os.access(existing, os.W_OK | os.X_OK):
        return [f"{key}: {existing} is not writable by this user ({consequence})"]
    warnings = []
    free = fs.f_bavail * fs.f_frsize
    if free < config.outbox.max_disk:
        warnings.append(
            f"{key}: only {format_size(free)} free on the file system of {existing}, less "
            f"than outbox.max_disk ({format_size(config.outbox.max_disk)}): events are held "
            "in memory while the disk is full"
        )
    if os.path.lexists(path):
        warnings += _file_warnings(key, path)
    return warnings


def _file_warnings(key: str, path: str) -> list[str]:
    if not os.path.isfile(path):
        return [f"{key}: {path} exists and is not a file (events would be kept in memory only)"]
    aside = "the agent sets it aside (renamed .corrupt-<time>) and starts a new, empty one"
    try:
        with open(path, "rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as err:
        return [f"{key}: cannot read {path}: {err.strerror}"]
    if not header:
        return []  # empty: SQLite makes a database of it
    if header != SQLITE_HEADER:
        return [f"{key}: {path} is not an SQLite database ({aside})"]
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            check = db.execute("PRAGMA quick_check").fetchall()
            tables = db.execute("SELECT name FROM sqlite_master WHERE name = 'outbox'").fetchall()
            if tables:
                db.execute("SELECT id, topic, payload FROM outbox LIMIT 0").fetchall()
    except sqlite3.Error as err:
        return [f"{key}: {path} cannot be used: {err} ({aside})"]
    if check != [("ok",)]:
        return [f"{key}: {path} is damaged: {check[0][0]} ({aside})"]
    return []
