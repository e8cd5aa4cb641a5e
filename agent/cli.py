"""The `sipagent` command line: run, check-config, send, version."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from agent import __version__
from agent.config import DEFAULT_CONFIG_PATH, Config, ConfigError, embedded_default, load_config

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
    send_p = sub.add_parser("send", help="send one MESSAGE and print the reply")
    sub.add_parser("version", help="print the version")
    from agent import sendcli  # imports pjsua2 only when a command needs it

    sendcli.add_arguments(send_p)
    args = parser.parse_args(argv)

    if args.command == "version":
        print(f"sipagent {__version__}")
        return 0
    if args.command == "check-config":
        return _check_config(args.path)
    if args.command == "send":
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        return sendcli.send(args)
    return _run(args.config)


def _check_config(path: str) -> int:
    from agent.statecheck import state_warnings

    try:
        config = load_config(path)
    except ConfigError as err:
        for line in err.problems:
            print(line)
        return 1
    # Not errors: the agent runs with them, degraded. Said here so that nobody is surprised.
    warnings = state_warnings(config)
    for line in warnings:
        print(f"warning: {line}")
    print(f"{path}: ok" + (f" ({len(warnings)} warnings)" if warnings else ""))
    return 0


def _load_for_run(path: str | None) -> Config:
    if path is None and not os.path.exists(DEFAULT_CONFIG_PATH):
        return embedded_default()
    return load_config(path or DEFAULT_CONFIG_PATH)


def _run(path: str | None) -> int:
    from agent import signals
    from agent.service import setup_logging

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
