"""A second SIP user agent for the tests, on pjsua2 directly (not on the project's code).

Run in a process of its own (pjsua2 allows one endpoint per process):

    python lab/peer_main.py --uri sip:owner@sipagent.test \
        --registrar sip:127.0.0.1:5060 --proxy "sip:127.0.0.1:5060;lr" \
        --username owner --password ownerpw

It reads JSON-line commands on stdin and writes JSON-line events on stdout (one per line,
flushed). pjsua logs go to stderr only.

Commands:
    {"op": "send", "to": URI, "body": STR, "content_type": "text/plain", "id": ID}
    {"op": "subscribe", "uri": URI}          {"op": "unsubscribe", "uri": URI}
    {"op": "presence", "status": "available|away|busy|dnd|offline", "note": STR}
    {"op": "register", "renew": true|false}  {"op": "ping", "id": ID}
    {"op": "call", "to": URI, "id": ID}      (an INVITE; no audio: the peer has no sound device)
    {"op": "quit"}
Events:
    {"event": "ready", "local_uri": ..., "transport_port": N}
    {"event": "reg", "code": N, "reason": STR, "expires": N}
    {"event": "message", "from": ..., "to": ..., "contact": ..., "body": ...,
     "content_type": ..., "src": "ip:port"}
    {"event": "sent", "id": ID, "code": N, "reason": STR}
    {"event": "buddy", "uri": ..., "status": "online|offline|unknown", "note": ...,
     "basic": "open|closed", "activity": "busy|away|unknown", "sub_state": ...}
    {"event": "pong", "id": ID}   {"event": "error", "text": ...}
    {"event": "call", "id": ID, "state": STR, "code": N, "reason": STR, "ended": BOOL}
Every event also carries "t" (time.time() when it was written).

Notes: with --publish the peer PUBLISHes only once a "presence" command sets a status
(pjsua does not publish on registration by itself). With --transport tcp, URIs without
";transport=" mean UDP to pjsip: the registrar and proxy get ";transport=tcp" added here,
but a direct-mode destination must carry it itself.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

_STATUS_NAMES = {
    pj.PJSUA_BUDDY_STATUS_ONLINE: "online",
    pj.PJSUA_BUDDY_STATUS_OFFLINE: "offline",
    pj.PJSUA_BUDDY_STATUS_UNKNOWN: "unknown",
}
_ACTIVITY_NAMES = {
    pj.PJRPID_ACTIVITY_UNKNOWN: "unknown",
    pj.PJRPID_ACTIVITY_AWAY: "away",
    pj.PJRPID_ACTIVITY_BUSY: "busy",
}
# status word -> (online?, RPID activity). pjsua has no "do not disturb": busy is closest.
_PRESENCE = {
    "available": (True, pj.PJRPID_ACTIVITY_UNKNOWN),
    "online": (True, pj.PJRPID_ACTIVITY_UNKNOWN),
    "away": (True, pj.PJRPID_ACTIVITY_AWAY),
    "busy": (True, pj.PJRPID_ACTIVITY_BUSY),
    "dnd": (True, pj.PJRPID_ACTIVITY_BUSY),
    "offline": (False, pj.PJRPID_ACTIVITY_UNKNOWN),
}


class Output:
    """JSON lines on the original stdout. A test that went away (broken pipe) ends the peer.

    pjlib prints its first log lines (before libInit installs our writer) straight to fd 1,
    so the event stream gets a private copy of fd 1 and fd 1 itself becomes stderr.
    """

    def __init__(self) -> None:
        self.broken = False
        self._stream: Any = None

    def claim_stdout(self) -> None:
        sys.stdout.flush()
        events_fd = os.dup(1)
        os.dup2(2, 1)
        self._stream = os.fdopen(events_fd, "w", buffering=1, encoding="utf-8")
        sys.stdout = sys.stderr

    def emit(self, event: str, **fields: Any) -> None:
        if self.broken or self._stream is None:
            return
        line = json.dumps({"event": event, **fields, "t": time.time()})
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            self.broken = True


OUT = Output()


def _bare(uri: str) -> str:
    uri = uri.strip()
    if uri.startswith("<") and uri.endswith(">"):
        return uri[1:-1]
    return uri


def _guard(name: str):
    """Report an exception in a pjsua2 callback instead of letting it cross into C++."""

    def wrap(fn):
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception:
                OUT.emit("error", text=f"{name}: {traceback.format_exc()}")
            return None

        return inner

    return wrap


class LogToStderr(pj.LogWriter):
    def write(self, entry: pj.LogEntry) -> None:
        sys.stderr.write(entry.msg if entry.msg.endswith("\n") else entry.msg + "\n")
        sys.stderr.flush()


class PeerAccount(pj.Account):
    def __init__(self, app: App) -> None:
        super().__init__()
        self.app = app

    @_guard("onRegState")
    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        self.app.reg_results += 1
        self.app.registered = prm.code // 100 == 2 and prm.expiration > 0
        OUT.emit("reg", code=prm.code, reason=prm.reason, expires=prm.expiration)

    @_guard("onInstantMessage")
    def onInstantMessage(self, prm: pj.OnInstantMessageParam) -> None:
        OUT.emit(
            "message",
            **{
                "from": _bare(prm.fromUri),
                "to": _bare(prm.toUri),
                "contact": _bare(prm.contactUri),
                "body": prm.msgBody,
                "content_type": prm.contentType,
                "src": prm.rdata.srcAddress,
            },
        )

    @_guard("onInstantMessageStatus")
    def onInstantMessageStatus(self, prm: pj.OnInstantMessageStatusParam) -> None:
        self.app.on_im_status(_bare(prm.toUri), prm.msgBody, prm.code, prm.reason)


class PeerBuddy(pj.Buddy):
    def __init__(self, uri: str) -> None:
        super().__init__()
        self.uri = uri
        self.subscribed = False

    def terminated(self) -> bool:
        # pjsua drops the subscription object once it is terminated: then the state is NULL.
        state = self.getInfo().subState
        return state in (pj.PJSIP_EVSUB_STATE_TERMINATED, pj.PJSIP_EVSUB_STATE_NULL)

    @_guard("onBuddyState")
    def onBuddyState(self) -> None:
        info = self.getInfo()
        st = info.presStatus
        OUT.emit(
            "buddy",
            uri=self.uri,
            status=_STATUS_NAMES.get(st.status, str(st.status)),
            note=st.statusText,
            rpid_note=st.note,
            basic="open" if st.status == pj.PJSUA_BUDDY_STATUS_ONLINE else "closed",
            activity=_ACTIVITY_NAMES.get(st.activity, str(st.activity)),
            sub_state=info.subStateName,
            sub_term_code=info.subTermCode,
        )


class PeerCall(pj.Call):
    def __init__(self, app: App, account: pj.Account, call_id: str) -> None:
        super().__init__(account)
        self.app = app
        self.id = call_id

    @_guard("onCallState")
    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        OUT.emit(
            "call",
            id=self.id,
            state=info.stateText,
            code=info.lastStatusCode,
            reason=info.lastReason,
            ended=info.state == pj.PJSIP_INV_STATE_DISCONNECTED,
        )
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            # Dropped from the next loop turn, not inside pjsua2's own callback.
            self.app.ended_calls.append(self.app.calls.pop(self.id, self))


class App:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ep: pj.Endpoint | None = None
        self.account: PeerAccount | None = None
        self.log_writer = LogToStderr()
        # pjsua2 calls these back for as long as they exist in C++: keep every one.
        self.buddies: dict[str, PeerBuddy] = {}
        # (destination, body) -> ids of MESSAGEs awaiting their final status, oldest first.
        # pjsua reports the destination and body but no id we could attach to the request.
        self.pending: dict[tuple[str, str], collections.deque[Any]] = collections.defaultdict(
            collections.deque
        )
        self.calls: dict[str, PeerCall] = {}
        self.ended_calls: list[PeerCall] = []
        self.stopping = False
        self.registered = False
        self.reg_results = 0  # onRegState calls so far

    # --- setup -----------------------------------------------------------------------------

    def _with_transport(self, uri: str) -> str:
        # A request URI without ;transport= means UDP to pjsip, which has no UDP transport
        # when the peer runs on TCP: say it explicitly.
        if self.args.transport == "tcp" and ";transport=" not in uri.lower():
            return uri + ";transport=tcp"
        return uri

    def start(self) -> None:
        args = self.args
        ep = pj.Endpoint()
        ep.libCreate()
        self.ep = ep
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "sipagent-lab-peer"
        cfg.logConfig.level = args.log_level
        cfg.logConfig.consoleLevel = args.log_level
        cfg.logConfig.writer = self.log_writer
        cfg.logConfig.msgLogging = args.log_level >= 4
        cfg.medConfig.threadCnt = 0
        ep.libInit(cfg)
        ep.audDevManager().setNoDev()

        host, _, port = args.listen.rpartition(":")
        tcfg = pj.TransportConfig()
        tcfg.boundAddress = host
        tcfg.publicAddress = host
        tcfg.port = int(port)
        kind = pj.PJSIP_TRANSPORT_TCP if args.transport == "tcp" else pj.PJSIP_TRANSPORT_UDP
        tid = ep.transportCreate(kind, tcfg)
        ep.libStart()
        local_name = ep.transportGetInfo(tid).localName
        transport_port = int(local_name.rpartition(":")[2])

        acfg = pj.AccountConfig()
        acfg.idUri = args.uri
        if args.registrar:
            acfg.regConfig.registrarUri = self._with_transport(args.registrar)
            acfg.regConfig.registerOnAdd = True
            acfg.regConfig.timeoutSec = args.expires
        if args.proxy:
            acfg.sipConfig.proxies.append(self._with_transport(args.proxy))
        if args.username:
            acfg.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", args.realm, args.username, 0, args.password or "")
            )
        acfg.sipConfig.transportId = tid
        acfg.presConfig.publishEnabled = args.publish
        account = PeerAccount(self)
        account.create(acfg, True)
        self.account = account
        OUT.emit("ready", local_uri=account.getInfo().uri, transport_port=transport_port)

    # --- commands --------------------------------------------------------------------------

    def buddy(self, uri: str) -> PeerBuddy:
        buddy = self.buddies.get(uri)
        if buddy is None:
            assert self.account is not None
            bcfg = pj.BuddyConfig()
            bcfg.uri = uri
            bcfg.subscribe = False
            buddy = PeerBuddy(uri)
            buddy.create(self.account, bcfg)
            self.buddies[uri] = buddy
        return buddy

    def on_im_status(self, to: str, body: str, code: int, reason: str) -> None:
        key = (to, body)
        if key not in self.pending:
            # pjsua may report the destination spelled differently (e.g. normalized):
            # fall back to the oldest pending MESSAGE with the same body.
            key = next((k for k in self.pending if k[1] == body), key)
        ids = self.pending.get(key)
        msg_id = ids.popleft() if ids else None
        if ids is not None and not ids:
            del self.pending[key]
        OUT.emit("sent", id=msg_id, to=to, code=code, reason=reason)

    def handle(self, cmd: dict[str, Any]) -> None:
        op = cmd.get("op")
        if op == "send":
            to = cmd["to"]
            body = cmd["body"]
            prm = pj.SendInstantMessageParam()
            prm.content = body
            prm.contentType = cmd.get("content_type", "text/plain")
            self.pending[(to, body)].append(cmd.get("id"))
            try:
                self.buddy(to).sendInstantMessage(prm)
            except pj.Error as exc:
                self.pending[(to, body)].pop()
                OUT.emit("sent", id=cmd.get("id"), to=to, code=0, reason=exc.info())
        elif op == "subscribe":
            buddy = self.buddy(cmd["uri"])
            buddy.subscribed = True
            buddy.subscribePresence(True)
        elif op == "unsubscribe":
            buddy = self.buddy(cmd["uri"])
            buddy.subscribed = False
            buddy.subscribePresence(False)
        elif op == "presence":
            status = cmd.get("status", "available")
            if status not in _PRESENCE:
                raise ValueError(f"unknown status {status!r} (known: {', '.join(_PRESENCE)})")
            online, activity = _PRESENCE[status]
            ps = pj.PresenceStatus()
            ps.status = pj.PJSUA_BUDDY_STATUS_ONLINE if online else pj.PJSUA_BUDDY_STATUS_OFFLINE
            ps.activity = activity
            ps.note = cmd.get("note", "")
            assert self.account is not None
            self.account.setOnlineStatus(ps)
        elif op == "register":
            assert self.account is not None
            self.account.setRegistration(bool(cmd.get("renew", True)))
        elif op == "call":
            assert self.account is not None
            call = PeerCall(self, self.account, str(cmd.get("id")))
            self.calls[call.id] = call
            try:
                call.makeCall(cmd["to"], pj.CallOpParam(True))
            except pj.Error:
                self.calls.pop(call.id, None)
                raise
        elif op == "ping":
            OUT.emit("pong", id=cmd.get("id"))
        elif op == "quit":
            self.stopping = True
        else:
            raise ValueError(f"unknown op {op!r}")

    def handle_line(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            cmd = json.loads(line)
            if not isinstance(cmd, dict):
                raise ValueError("a command is a JSON object")
            self.handle(cmd)
        except pj.Error as exc:
            OUT.emit("error", text=f"{line.decode(errors='replace')}: {exc.info()}")
        except (ValueError, KeyError, TypeError) as exc:
            OUT.emit("error", text=f"{line.decode(errors='replace')}: {exc!r}")

    # --- loop and shutdown -----------------------------------------------------------------

    def run(self) -> None:
        assert self.ep is not None
        buf = b""
        stdin_open = True
        while not self.stopping and not OUT.broken:
            self.ep.libHandleEvents(10)
            self.ended_calls.clear()
            if not stdin_open:
                continue
            # os.read on the fd, not sys.stdin: a buffered reader would hide the rest of a
            # burst of lines from select().
            ready, _, _ = select.select([0], [], [], 0)
            if not ready:
                continue
            chunk = os.read(0, 65536)
            if not chunk:
                stdin_open = False
                self.stopping = True  # EOF: the test is gone or done
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                self.handle_line(line)
                if self.stopping:
                    break

    def _pump_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Handle SIP events until ``done()`` or ``timeout`` s; whether it got done."""
        assert self.ep is not None
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() >= deadline:
                return False
            self.ep.libHandleEvents(10)
        return True

    def shutdown(self) -> None:
        """Unsubscribe, unregister, delete buddies and account, libDestroy: in this order.

        pjsua2 objects destroyed later (at interpreter exit) abort with pjlib's
        "unknown/external thread" assertion. libDestroy() on its own would do the network
        part too, but it then always waits 1 s. Here each step waits for its own answer, so
        libDestroy need not wait at all -- except after PUBLISH: pjsua2 reports nothing when
        an unPUBLISH is answered, so a publishing peer leaves that to libDestroy's wait.
        """
        if self.ep is None:
            return
        clean = True
        try:
            watched = [b for b in self.buddies.values() if b.subscribed]
            for buddy in watched:
                buddy.subscribePresence(False)
            clean = self._pump_until(lambda: all(b.terminated() for b in watched), 2.0)
            if self.account is not None and self.registered:
                before = self.reg_results
                self.account.setRegistration(False)
                clean = clean and self._pump_until(lambda: self.reg_results > before, 3.0)
        except pj.Error as exc:
            OUT.emit("error", text=f"shutdown: {exc.info()}")
            clean = False
        self.buddies.clear()
        for call in list(self.calls.values()):
            with contextlib.suppress(pj.Error):
                call.hangup(pj.CallOpParam())
        self.calls.clear()
        self.ended_calls.clear()
        if self.account is not None:
            self.account.shutdown()
            self.account = None
        wait_in_destroy = self.args.publish or not clean
        self.ep.libDestroy(0 if wait_in_destroy else pj.PJSUA_DESTROY_NO_RX_MSG)
        self.ep = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--uri", required=True, help="own identity, e.g. sip:owner@sipagent.test")
    p.add_argument("--registrar", help="e.g. sip:127.0.0.1:5060; omit for no REGISTER")
    p.add_argument("--proxy", help="outbound proxy, e.g. sip:127.0.0.1:5060;lr")
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--realm", default="*")
    p.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--expires", type=int, default=300, help="REGISTER expiry in seconds")
    p.add_argument("--publish", action="store_true", help="PUBLISH own presence")
    p.add_argument("--log-level", type=int, default=1, help="pjsua log level on stderr")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    OUT.claim_stdout()
    app = App(args)

    def on_signal(signum: int, _frame: object) -> None:
        # Only a flag: pjsua2 may be called from the main loop only.
        app.stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        app.start()
        app.run()
    except Exception:
        OUT.emit("error", text=traceback.format_exc())
        app.shutdown()
        return 1
    app.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
