"""The `sipagent` command line: run, check-config, status, send, totp, version.

Nothing but `agent.lean` is imported before `main` puts its stand-ins in place: the config
model and logging already import modules a run never uses (agent.lean).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from agent import __version__
from agent.lean import deferrable, deferred_imports, forget

if TYPE_CHECKING:
    from agent.config.model import Config


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    with deferred_imports(deferrable(None)):
        service = _service_command(args)
        if service is not None:
            return _run(service[0])
        return _main(args)


def _service_command(args: list[str]) -> tuple[str | None] | None:
    """`run [--config PATH]`, the service's command line, read without argparse.

    argparse and what it loads for help texts (gettext, locale, shutil) would stay in the
    service's memory for months: 0.6 MB. Anything else goes to argparse.
    """
    match args:
        case ["run"]:
            return (None,)
        case ["run", "--config", path] if not path.startswith("-"):
            return (path,)
        case ["run", option] if option.startswith("--config=") and len(option) > 9:
            return (option.removeprefix("--config="),)
    return None


def _main(argv: list[str]) -> int:
    import argparse
    import logging

    from agent.config.load import DEFAULT_CONFIG_PATH

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
    from agent.config.load import load_config
    from agent.config.model import ConfigError
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
    import json

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
    from agent.config.load import DEFAULT_CONFIG_PATH, embedded_default, load_config

    if path is None and not os.path.exists(DEFAULT_CONFIG_PATH):
        config = embedded_default()
    else:
        config = load_config(path or DEFAULT_CONFIG_PATH)
    forget("tomllib")  # read once; a reload (SIGHUP) imports it again
    return config


def _run(path: str | None) -> int:
    from agent.adapters import signals

    # Before the slow imports and the config: a HUP during the start must not kill us.
    signals.install()

    import logging

    from agent.adapters.service import setup_logging
    from agent.config.model import ConfigError

    log = logging.getLogger("agent")
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
    try:
        # Everything is imported while the adapters are built: what this config never
        # uses (paho's TLS without mqtt.tls) stays a stand-in (agent.lean).
        with deferred_imports(deferrable(config)):
            from agent.loop import Runner

            runner = Runner(config)
        return runner.run()
    except Exception:
        log.exception("sipagent failed")
        return 1
