"""The `sipagent` command line: run, check-config, status, send, totp, version."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from agent import __version__
from agent.config.load import DEFAULT_CONFIG_PATH, embedded_default, load_config
from agent.config.model import Config, ConfigError

log = logging.getLogger("agent")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sipagent", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the agent (the service)")
    run_p.add_argument(
        "--config",
        help=f"config file (default {DEFAULT_CONFIG_PATH}; the embedded demo config if absent)",
    )
    check_p = sub.add_parser("check-config", help="validate a config file")
    check_p.add_argument("path")
    check_p.add_argument(
        "--explain",
        action="store_true",
        help="print what the config means: effective values, who may do what, MQTT topics",
    )
    status_p = sub.add_parser("status", help="ask the running agent how it is")
    status_p.add_argument("--json", action="store_true", help="the whole answer as JSON")
    status_p.add_argument("--socket", help="the agent's status socket (default: look for it)")
    send_p = sub.add_parser("send", help="send one MESSAGE and print the reply")
    totp_p = sub.add_parser("totp", help="one-time codes: enrol a user, check a code")
    sub.add_parser("version", help="print the version")
    from agent.adapters.sip import sendcli  # pjsua2 is imported only when a command needs it
    from agent.config import enrol as totpcli

    sendcli.add_arguments(send_p)
    totpcli.add_arguments(totp_p)
    args = parser.parse_args(argv)

    if args.command == "version":
        print(f"sipagent {__version__}")
        return 0
    if args.command == "check-config":
        return _check_config(args.path, args.explain)
    if args.command == "status":
        return _status(args.socket, args.json)
    if args.command == "totp":
        return totpcli.run(args)
    if args.command == "send":
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        return sendcli.send(args)
    return _run(args.config)


def _check_config(path: str, explain: bool = False) -> int:
    from agent.config.statecheck import state_warnings

    try:
        config = load_config(path)
    except ConfigError as err:
        for line in err.problems:
            print(line)
        return 1
    if explain:
        import tomllib

        from agent.core.explain import explain as explain_lines

        with open(path, "rb") as f:
            raw = tomllib.load(f)
        print("\n".join(explain_lines(config, raw)))
    # Not errors: the agent runs with them, degraded. Said here so that nobody is surprised.
    warnings = state_warnings(config)
    for line in warnings:
        print(f"warning: {line}")
    print(f"{path}: ok" + (f" ({len(warnings)} warnings)" if warnings else ""))
    return 0


def _status(socket_path: str | None, as_json: bool) -> int:
    from agent.adapters.status_socket import StatusUnavailable, ask, client_paths
    from agent.core.status_report import render

    try:
        answer = ask([socket_path] if socket_path else client_paths())
    except StatusUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(answer, indent=2))
    else:
        print("\n".join(render(answer)))
    return 0


def _load_for_run(path: str | None) -> Config:
    if path is None and not os.path.exists(DEFAULT_CONFIG_PATH):
        return embedded_default()
    return load_config(path or DEFAULT_CONFIG_PATH)


def _run(path: str | None) -> int:
    from agent.adapters import signals
    from agent.adapters.service import setup_logging

    # Before the slow imports and the config: a HUP during the start must not kill us.
    signals.install()

    try:
        config = _load_for_run(path)
    except ConfigError as err:
        # Refuse before touching the network: one line per problem, naming the key.
        setup_logging("info")
        for line in err.problems:
            print(line, file=sys.stderr)
        return 1
    setup_logging(config.log.level)
    log.info("sipagent %s starting with %s", __version__, config.source)
    from agent.loop import run

    try:
        return run(config)
    except Exception:
        log.exception("sipagent failed")
        return 1
