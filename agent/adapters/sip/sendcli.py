"""`sipagent send`: one MESSAGE from the command line, and the reply if one comes.

A person's second terminal: it needs no agent config, only an identity to send as.
It is built on the same SIP adapter as the agent, with a listener of its own.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from agent import __version__
from agent.config.model import SipConfig
from agent.core.messages import IncomingMessage
from agent.core.ports import SipError
from agent.core.registration import RegState
from agent.core.sipuri import InvalidSipUri, parse_sip_uri

if TYPE_CHECKING:  # pjsua2 is imported when a MESSAGE is sent, not for --help
    from agent.adapters.sip.stack import SipStack

log = logging.getLogger(__name__)

DEFAULT_FROM = "sip:owner@127.0.0.1"
# The password never comes from the command line: every user on the machine can read another
# process's argv (ps, /proc/<pid>/cmdline); a file or the environment (/proc/<pid>/environ is
# readable by the same user only) is private.
PASSWORD_ENV = "SIPAGENT_PASSWORD"
MAX_PASSWORD_FILE_BYTES = 4096


class PasswordError(Exception):
    """The password could not be had from where it was asked for; the message says why."""


T = TypeVar("T")


@dataclass
class _Listener:
    """What `sipagent send` heard back: registration, status and replies."""

    registration: RegState | None = None
    status: tuple[int, str] | None = None
    replies: list[IncomingMessage] = field(default_factory=list)

    def on_registration(self, state: RegState, account: str | None = None) -> None:
        self.registration = state

    def on_message(self, msg: IncomingMessage) -> None:
        self.replies.append(msg)

    def on_message_status(self, token: str | None, to: str, code: int, reason: str) -> None:
        self.status = (code, reason)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("to", help="who to send to, e.g. sip:agent@127.0.0.1:5060")
    p.add_argument("text", help="the message, e.g. 'on lamp'")
    p.add_argument("--from", dest="from_uri", default=DEFAULT_FROM, help="identity to send as")
    p.add_argument("--registrar", help="register here first (else: direct, no server)")
    p.add_argument("--proxy", help="outbound proxy (default: the registrar)")
    p.add_argument("--username", help="auth user (default: the user part of --from)")
    p.add_argument(
        "--password-file",
        help=f"file holding the auth password (default: ${PASSWORD_ENV}, if set)",
    )
    # Refused with a reason (it would show the password in `ps`); not in --help.
    p.add_argument("--password", help=argparse.SUPPRESS)
    p.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    p.add_argument("--listen", default="0.0.0.0:0", help="local address (default: any port)")
    p.add_argument("--content-type", default="text/plain")
    p.add_argument("--wait", type=float, default=5.0, help="seconds to wait for a reply")


def send(args: argparse.Namespace) -> int:
    """Exit 0 when a reply came (or --wait 0 and it was delivered), 1 if not delivered,
    2 when delivered but no reply came in time."""
    try:
        uri = parse_sip_uri(args.from_uri)
        for value in (args.to, args.registrar, args.proxy):
            if value:
                parse_sip_uri(value)
    except InvalidSipUri as err:
        print(f"error: {err}")
        return 1
    try:
        password = read_password(args.password_file, args.password, os.environ)
    except PasswordError as err:
        print(f"error: {err}")
        return 1
    host, _, port = args.listen.rpartition(":")
    config = SipConfig(
        uri=str(uri),
        registrar=args.registrar,
        proxy=args.proxy,
        username=args.username or uri.user or "",
        password=password,
        transport=args.transport,
        listen_host=host or "0.0.0.0",
        listen_port=int(port or 0),
        presence="off",
        reg_expires=60,
        user_agent=f"sipagent-send/{__version__}",
        realm="*",
    )
    from agent.adapters.sip.stack import SipStack

    stack = SipStack(config)
    listener = _Listener()
    stack.listener = listener
    stack.start()
    try:
        return _converse(stack, listener, args)
    finally:
        stack.shutdown(timeout_s=1.0)


def read_password(
    path: str | None, on_command_line: str | None, env: dict[str, str] | os._Environ[str]
) -> str | None:
    """The auth password from `path`, else from $SIPAGENT_PASSWORD, else None."""
    if on_command_line is not None:
        raise PasswordError(
            "--password would show the password to every user of this machine (ps); "
            f"use --password-file FILE or the environment variable {PASSWORD_ENV}"
        )
    if path is None:
        return env.get(PASSWORD_ENV) or None
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PASSWORD_FILE_BYTES + 1)
    except OSError as err:
        raise PasswordError(f"--password-file {path}: {err.strerror or err}") from None
    if len(data) > MAX_PASSWORD_FILE_BYTES:
        raise PasswordError(f"--password-file {path}: longer than {MAX_PASSWORD_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PasswordError(f"--password-file {path}: not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")  # as agent.config.table reads secrets
    if not text:
        raise PasswordError(f"--password-file {path}: empty")
    return text


def _converse(stack: SipStack, listener: _Listener, args: argparse.Namespace) -> int:
    if args.registrar:
        reg = _poll_until(stack, lambda: listener.registration, 10.0)
        if reg is None or reg.state != "registered":
            detail = f"{reg.code} {reg.reason}" if reg else "no answer"
            print(f"error: registration at {args.registrar} failed: {detail}")
            return 1
    try:
        stack.send_message(args.to, args.text, args.content_type)
    except SipError as err:
        print(f"error: {err}")
        return 1
    status = _poll_until(stack, lambda: listener.status, 35.0)
    if status is None or not 200 <= status[0] < 300:
        detail = f"{status[0]} {status[1]}" if status else "no answer"
        print(f"error: not delivered: {detail}")
        return 1
    print(f"sent: {status[0]} {status[1]}")
    if args.wait <= 0:
        return 0
    reply = _poll_until(stack, lambda: listener.replies[0] if listener.replies else None, args.wait)
    if reply is None:
        print(f"no reply within {args.wait:g}s")
        return 2
    print(f"reply from {reply.from_uri}: {reply.body}")
    return 0


def _poll_until(stack: SipStack, probe: Callable[[], T | None], timeout_s: float) -> T | None:
    deadline = time.monotonic() + timeout_s
    while (value := probe()) is None and time.monotonic() < deadline:
        stack.poll(50)
    return value
