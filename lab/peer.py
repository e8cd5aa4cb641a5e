"""Test-side handle of a peer_main.py process: send commands, wait for its events."""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from .waiting import log_tail

PEER_MAIN = Path(__file__).with_name("peer_main.py")

Event = dict[str, Any]
Predicate = Callable[[Event], bool]

_SEQ = itertools.count(1)

# Events reporting a state: waits for them move forward in time (see Peer).
STATE_EVENTS = frozenset({"reg", "buddy"})


def _matcher(predicate_or_kind: Predicate | str) -> Predicate:
    if isinstance(predicate_or_kind, str):
        kind = predicate_or_kind
        return lambda e: e.get("event") == kind
    return predicate_or_kind


class Peer:
    """A pjsua2 user agent in its own process.

    Every event it reports is kept in ``events`` (in order). The ``wait_*`` methods consume:
    each event is returned by at most one wait, so two waits for "a message" get two
    different messages. Events that report a state ("reg", "buddy") are also a timeline:
    a wait for them only looks at events newer than the last one of that kind it returned,
    so waiting for "closed" after "busy" cannot return a "closed" from before "busy".
    """

    def __init__(self, proc: subprocess.Popen[bytes], name: str, log: Path) -> None:
        self.proc = proc
        self.name = name
        self.log = log
        self.events: list[Event] = []
        self._consumed: set[int] = set()
        # kind -> index of the newest consumed event of that kind, for the state kinds.
        self._state_cursor: dict[str, int] = {}
        self._cond = threading.Condition()
        self._eof = False
        self._write_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name=f"peer-{name}", daemon=True)
        self._reader.start()
        self.ready: Event = {}

    # --- start -----------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        uri: str,
        registrar: str | None = None,
        proxy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        transport: str = "udp",
        listen: str = "127.0.0.1:0",
        python: str = sys.executable,
        *,
        workdir: Path,
        publish: bool = False,
        realm: str = "*",
        expires: int | None = None,
        log_level: int = 1,
        name: str | None = None,
        timeout: float = 10.0,
        netns: str | None = None,
    ) -> Peer:
        """Launch peer_main.py and wait for its ``ready`` event (stderr goes to a log).

        ``netns``: run it inside that network namespace (see lab.netns).
        """
        name = name or f"{uri.removeprefix('sip:').split('@')[0]}-{next(_SEQ)}"
        prefix = ["ip", "netns", "exec", netns] if netns else []
        argv = [*prefix, python, str(PEER_MAIN), "--uri", uri, "--transport", transport]
        argv += ["--listen", listen, "--realm", realm, "--log-level", str(log_level)]
        for flag, value in (
            ("--registrar", registrar),
            ("--proxy", proxy),
            ("--username", username),
            ("--password", password),
            ("--expires", None if expires is None else str(expires)),
        ):
            if value is not None:
                argv += [flag, value]
        if publish:
            argv.append("--publish")
        workdir.mkdir(parents=True, exist_ok=True)
        log = workdir / f"peer-{name}.log"
        with log.open("ab") as err:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
            )
        peer = cls(proc, name, log)
        try:
            peer.ready = peer.wait_event("ready", timeout)
        except AssertionError:
            peer.close()
            raise
        return peer

    # --- events ----------------------------------------------------------------------------

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                event = {"event": "garbage", "text": raw.decode(errors="replace")}
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _fail(self, what: str, timeout: float) -> AssertionError:
        state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        recent = "\n".join(json.dumps(e) for e in self.events[-15:])
        return AssertionError(
            f"peer {self.name} ({state}): no {what} within {timeout:g} s\n"
            f"last events:\n{recent}\nlast lines of {self.log}:\n{log_tail(self.log, 20)}"
        )

    def _take(self, match: Predicate) -> Event | None:
        for i, event in enumerate(self.events):
            if i in self._consumed or not match(event):
                continue
            kind = event.get("event", "")
            if kind in STATE_EVENTS and i < self._state_cursor.get(kind, -1):
                continue
            self._consumed.add(i)
            if kind in STATE_EVENTS:
                self._state_cursor[kind] = i
            return event
        return None

    def wait_event(
        self, predicate_or_kind: Predicate | str, timeout: float = 10.0, what: str | None = None
    ) -> Event:
        """The oldest not yet consumed event that matches; consumes it."""
        match = _matcher(predicate_or_kind)
        what = what or (
            predicate_or_kind if isinstance(predicate_or_kind, str) else "matching event"
        )
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                event = self._take(match)
                if event is not None:
                    return event
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise self._fail(what, timeout)
                self._cond.wait(left)

    def assert_no_event(self, predicate_or_kind: Predicate | str, within: float) -> None:
        """Fail if a matching (unconsumed) event arrives within ``within`` s."""
        match = _matcher(predicate_or_kind)
        deadline = time.monotonic() + within
        with self._cond:
            while True:
                for i, event in enumerate(self.events):
                    if i not in self._consumed and match(event):
                        raise AssertionError(f"peer {self.name}: unexpected event {event}")
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    return
                self._cond.wait(left)

    def wait_registered(self, timeout: float = 10.0) -> Event:
        """The next successful registration; raises with the code/reason of a failed one."""
        event = self.wait_event("reg", timeout, "registration result")
        if event["code"] // 100 != 2 or event["expires"] <= 0:
            raise AssertionError(
                f"peer {self.name}: registration failed: {event['code']} {event['reason']}"
            )
        return event

    def wait_message(self, predicate: Predicate | None = None, timeout: float = 10.0) -> Event:
        """The oldest received MESSAGE not returned before (that matches ``predicate``)."""

        def match(e: Event) -> bool:
            return e.get("event") == "message" and (predicate is None or predicate(e))

        return self.wait_event(match, timeout, "incoming MESSAGE")

    def wait_buddy(self, predicate: Predicate | None = None, timeout: float = 10.0) -> Event:
        """The oldest buddy (presence) event not returned before that matches."""

        def match(e: Event) -> bool:
            return e.get("event") == "buddy" and (predicate is None or predicate(e))

        return self.wait_event(match, timeout, "buddy state")

    # --- commands --------------------------------------------------------------------------

    def command(self, op: str, **fields: Any) -> None:
        line = json.dumps({"op": op, **fields}) + "\n"
        assert self.proc.stdin is not None
        with self._write_lock:
            try:
                self.proc.stdin.write(line.encode())
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError) as exc:
                raise AssertionError(
                    f"peer {self.name} is gone ({exc!r}); log:\n{log_tail(self.log, 20)}"
                ) from exc

    def send_nowait(self, to: str, body: str, content_type: str = "text/plain") -> str:
        """Send a MESSAGE; returns the id its ``sent`` event will carry."""
        msg_id = f"{self.name}-{next(_SEQ)}"
        self.command("send", to=to, body=body, content_type=content_type, id=msg_id)
        return msg_id

    def wait_sent(self, msg_id: str, timeout: float = 10.0) -> Event:
        return self.wait_event(
            lambda e: e.get("event") == "sent" and e.get("id") == msg_id,
            timeout,
            f"final status of MESSAGE {msg_id}",
        )

    def send(
        self, to: str, body: str, content_type: str = "text/plain", timeout: float = 10.0
    ) -> Event:
        """Send a MESSAGE and return its ``sent`` event (code = final SIP status)."""
        return self.wait_sent(self.send_nowait(to, body, content_type), timeout)

    def call(self, to: str) -> str:
        """Start a call (INVITE); returns the id its ``call`` events carry."""
        call_id = f"{self.name}-call-{next(_SEQ)}"
        self.command("call", to=to, id=call_id)
        return call_id

    def wait_call_ended(self, call_id: str, timeout: float = 10.0) -> Event:
        """The ``call`` event that reports the call disconnected (with the final code)."""
        return self.wait_event(
            lambda e: (
                e.get("event") == "call" and e.get("id") == call_id and e.get("ended") is True
            ),
            timeout,
            f"end of call {call_id}",
        )

    def subscribe(self, uri: str) -> None:
        self.command("subscribe", uri=uri)

    def unsubscribe(self, uri: str) -> None:
        self.command("unsubscribe", uri=uri)

    def set_presence(self, status: str, note: str = "") -> None:
        """PUBLISH (peer started with publish=True) or update the own presence."""
        self.command("presence", status=status, note=note)

    def register(self, renew: bool = True) -> None:
        self.command("register", renew=renew)

    def sync(self, timeout: float = 10.0) -> None:
        """Return once the peer has handled every command sent before."""
        token = f"sync-{next(_SEQ)}"
        self.command("ping", id=token)
        self.wait_event(lambda e: e.get("event") == "pong" and e.get("id") == token, timeout)

    @property
    def transport_port(self) -> int:
        return int(self.ready["transport_port"])

    @property
    def local_uri(self) -> str:
        return str(self.ready["local_uri"])

    # --- stop ------------------------------------------------------------------------------

    def request_quit(self) -> None:
        """Ask the peer to quit without waiting (see close())."""
        if self.proc.poll() is None:
            with contextlib.suppress(AssertionError):
                self.command("quit")

    def close(self, timeout: float = 10.0) -> int:
        """Ask the peer to quit (clean pjsua2 shutdown), kill it after ``timeout`` s.

        Returns the exit code: 0 after a clean shutdown. Quitting takes about a second:
        pjsua's libDestroy() always waits 1 s for the answers to its unREGISTER/unPUBLISH.
        To close many peers, call request_quit() on each first.
        """
        if self.proc.poll() is None:
            self.request_quit()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        self._reader.join(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    def __enter__(self) -> Peer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
