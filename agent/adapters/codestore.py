"""The record of spent one-time codes and lockouts, in the state directory (agent.core.codes.Store).

One small JSON file, `one-time-codes.json`, holding per secret fingerprint the newest step
used and the lockout state. It is written in place at a fixed size (padded), so that a
full disk still takes it (the blocks are already there); a larger record (more users) is
written to a new file and renamed over. An accepted code is fsynced before the command
runs; a wrong one is written without fsync.

A record that cannot be read as JSON (a torn write after a power cut, or damage) is
reported as damaged: agent.core.codes then accepts no code that is valid at that moment.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict, fields
from typing import TYPE_CHECKING

from agent.core.throttle import Throttle

if TYPE_CHECKING:  # loaded with agent.core.codes, only where a user has a secret
    from agent.core.codes import SecretState

log = logging.getLogger(__name__)

FILE_NAME = "one-time-codes.json"
BLOCK = 4096


class CodeFile:
    """agent.core.codes.Store on a file; never raises."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, FILE_NAME)
        self._say = Throttle()

    def load(self) -> tuple[dict[str, SecretState], bool]:
        try:
            with open(self.path, "rb") as file:
                text = file.read(1024 * 1024)
        except FileNotFoundError:
            return {}, False
        except OSError as err:
            log.error("one-time codes: cannot read %s: %s; no code valid now is accepted",
                      self.path, err)  # fmt: skip
            return {}, True
        from agent.core.codes import SecretState  # loaded already: the guard asks

        try:
            raw = json.loads(text.decode("utf-8"))
            names = {f.name for f in fields(SecretState)}
            states = {
                str(k): SecretState(**{n: v for n, v in dict(v).items() if n in names})
                for k, v in dict(raw["secrets"]).items()
            }
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            log.error("one-time codes: %s is damaged (%s); no code valid now is accepted",
                      self.path, err)  # fmt: skip
            return {}, True
        return states, False

    def save(self, states: dict[str, SecretState], *, sync: bool) -> bool:
        data = json.dumps({"version": 1, "secrets": {k: asdict(v) for k, v in states.items()}})
        raw = data.encode()
        size = -(-(len(raw) + 1) // BLOCK) * BLOCK
        padded = raw + b" " * (size - len(raw) - 1) + b"\n"
        try:
            if self._size() == size:
                self._overwrite(padded, sync)
            else:
                self._replace(padded, sync)
        except OSError as err:
            if self._say.say("save").now:
                log.error("one-time codes: cannot record in %s: %s", self.path, err)
            return False
        self._say.forget("save")
        return True

    def _size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except OSError:
            return -1

    def _overwrite(self, data: bytes, sync: bool) -> None:
        fd = os.open(self.path, os.O_WRONLY)
        try:
            if os.pwrite(fd, data, 0) != len(data):
                raise OSError(f"short write to {self.path}")
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def _replace(self, data: bytes, sync: bool) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        temp = self.path + ".new"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if os.write(fd, data) != len(data):
                raise OSError(f"short write to {temp}")
            os.fsync(fd)  # a rename must never expose an empty file
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        os.close(fd)
        os.replace(temp, self.path)
        if sync:
            dir_fd = os.open(os.path.dirname(self.path), os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
