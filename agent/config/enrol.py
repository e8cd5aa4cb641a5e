"""`sipagent totp new <user>` and `sipagent totp check <user> <code>`: enrolling a person's
authenticator app for one-time codes, and checking a code against the stored secret.

The secret goes where the config reads it: the file named by the user's `totp_secret_file`,
else `totp/<user>` beside the config (and the command prints the lines to add). The file is
created 0600 in a 0700 directory, never through a symlink, and an existing one is kept
unless `--force`. Under systemd the service reads it through `LoadCredential=totp:...`, which
copies the directory at start: after enrolling, restart the service.

The QR code needs the optional `qr` extra (segno: pure Python, no dependencies of its own,
~0.6 MB, writes PNG itself); without it the URI and the secret are printed all the same.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import sys
import time
import tomllib
from typing import Any, TextIO
from urllib.parse import quote

from agent.config.access import json_key
from agent.config.load import DEFAULT_CONFIG_PATH, load_config
from agent.config.model import ConfigError
from agent.core.codes import CodeGuard, Verdict
from agent.core.sipuri import InvalidSipUri, address_of_record
from agent.core.totp import CODE

SECRET_BYTES = 20  # 160 bits, as RFC 4226 recommends; 32 base32 characters
TOTP_DIR = "totp"  # beside the config; the unit loads it whole (LoadCredential=totp:...)
MQTT_IDENTITY = re.compile(r"mqtt:[A-Za-z0-9_.-]+")


class EnrolError(Exception):
    """The secret cannot be made or stored as asked; the message says what to do."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="totp_command", required=True)
    new = sub.add_parser("new", help="make a secret for a user; show it as a QR code")
    new.add_argument("user", help="the user's identity as in access.users, e.g. sip:alice@pbx")
    new.add_argument("--config", default=DEFAULT_CONFIG_PATH, help="the agent's config")
    new.add_argument("--png", help="also write the QR code to this PNG file")
    new.add_argument("--issuer", help="the name the app shows (default: device.name)")
    new.add_argument("--force", action="store_true", help="replace an existing secret")
    check = sub.add_parser("check", help="would this code pass now?")
    check.add_argument("user")
    check.add_argument("code", help="the 6 digits the app shows")
    check.add_argument("--config", default=DEFAULT_CONFIG_PATH, help="the agent's config")


def run(args: argparse.Namespace) -> int:
    try:
        if args.totp_command == "new":
            return _new(args, sys.stdout)
        return _check(args, sys.stdout)
    except (EnrolError, ConfigError, InvalidSipUri) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


# -- pure parts ------------------------------------------------------------------------------


def identity(text: str) -> str:
    """The user as access rules know them: an address of record, or an MQTT identity."""
    text = text.strip()
    return text if MQTT_IDENTITY.fullmatch(text) else address_of_record(text)


def file_name(ident: str) -> str:
    """`sip:alice@pbx.example.org` -> `alice_pbx.example.org`: one safe path component."""
    bare = ident.split(":", 1)[1] if ":" in ident else ident
    return re.sub(r"[^A-Za-z0-9._-]", "_", bare.replace("@", "_")).strip("._") or "user"


def new_secret() -> str:
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")


def otpauth_uri(secret: str, account: str, issuer: str) -> str:
    """The Key URI Format every authenticator app scans (SHA-1, 6 digits, 30 s)."""
    label = quote(f"{issuer}:{account}", safe="@:")
    query = f"secret={secret}&issuer={quote(issuer, safe='')}&algorithm=SHA1&digits=6&period=30"
    return f"otpauth://totp/{label}?{query}"


def user_entry(raw: dict[str, Any], ident: str) -> tuple[str | None, dict[str, Any] | None]:
    """(the key of `ident`'s access.users table as written, that table) or (None, None)."""
    users = raw.get("access", {}).get("users", {})
    for key, table in users.items() if isinstance(users, dict) else ():
        try:
            if identity(key) == ident and isinstance(table, dict):
                return key, table
        except InvalidSipUri:
            continue
    return None, None


# -- new --------------------------------------------------------------------------------------


def _new(args: argparse.Namespace, out: TextIO) -> int:
    ident = identity(args.user)
    config_dir = os.path.dirname(os.path.abspath(args.config))
    raw = _raw_config(args.config)
    key, table = user_entry(raw, ident)
    if table is not None and "totp_secret" in table:
        raise EnrolError(
            f"access.users.{json_key(key or ident)} holds its secret inline (totp_secret); "
            f'replace it with totp_secret_file = "{TOTP_DIR}/{file_name(ident)}" and run again'
        )
    named = table.get("totp_secret_file") if table is not None else None
    relative = named if isinstance(named, str) else f"{TOTP_DIR}/{file_name(ident)}"
    path = relative if os.path.isabs(relative) else os.path.join(config_dir, relative)
    secret = new_secret()
    _store(path, secret, force=args.force)
    issuer = args.issuer or raw.get("device", {}).get("name") or "sipagent"
    uri = otpauth_uri(secret, ident.split(":", 1)[-1], str(issuer))
    print(f"secret for {ident} stored in {path} (mode 0600)", file=out)
    print(f"scan this with an authenticator app, or type the key {secret}:", file=out)
    print(uri, file=out)
    _show_qr(uri, args.png, out)
    if named is None:
        print(_config_hint(raw, key, ident, relative), file=out)
    print(
        "then: sudo systemctl restart sipagent (the service loads secrets at start), and check "
        f"a code from the app with: sipagent totp check {ident} <code>",
        file=out,
    )
    return 0


def _raw_config(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as err:
        raise EnrolError(f"cannot read the config {path}: {err.strerror or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise EnrolError(f"{path}: TOML syntax error: {err}") from None


def _store(path: str, secret: str, *, force: bool) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if os.path.lexists(path) and not force:
        raise EnrolError(
            f"{path} exists: that user has a secret already (--force replaces it, and the "
            "old codes stop working)"
        )
    temp = f"{path}.new"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        if os.path.lexists(temp):
            os.unlink(temp)  # left by an interrupted run
        fd = os.open(temp, flags, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)  # a symlink at `path` is replaced, never followed
    except OSError as err:
        raise EnrolError(f"cannot write {path}: {err.strerror or err}") from None


def _show_qr(uri: str, png: str | None, out: TextIO) -> None:
    try:
        import segno
    except ImportError:
        print(
            "(no QR code: install the `qr` extra, e.g. pip install 'sipagent[qr]', "
            "or Debian's python3-segno)",
            file=out,
        )
        if png:
            raise EnrolError("--png needs segno (the `qr` extra)") from None
        return
    qr = segno.make(uri, error="m")
    # Half blocks: two rows of modules per line, readable by a phone from any UTF-8 terminal.
    qr.terminal(out=out, compact=True)
    if png:
        qr.save(png, kind="png", scale=8, border=4)
        os.chmod(png, 0o600)  # it holds the secret too
        print(f"QR code written to {png} (it holds the secret: delete it after scanning)", file=out)


def _config_hint(raw: dict[str, Any], key: str | None, ident: str, relative: str) -> str:
    lines = ["add to the config:", ""]
    lines.append(f"[access.users.{json_key(key or ident)}]")
    lines.append(f'totp_secret_file = "{relative}"')
    allow = raw.get("access", {}).get("allow", [])
    try:
        allowed = ident in {identity(a) for a in allow if isinstance(a, str)}
    except InvalidSipUri:
        allowed = False
    if allowed:
        lines.append(
            f"# and remove {ident} from access.allow (a table without commands/outputs "
            "keeps every right)"
        )
    lines.append('# outputs that ask for a code: access.require_code = ["gate"]')
    return "\n".join(lines) + "\n"


# -- check ------------------------------------------------------------------------------------


def _check(args: argparse.Namespace, out: TextIO) -> int:
    ident = identity(args.user)
    config = load_config(args.config)
    rights = config.access.rights_of(ident)
    if rights is None or rights.totp_secret is None:
        raise EnrolError(f"{ident} has no one-time code secret in {args.config}")
    code = args.code.strip()
    if not CODE.fullmatch(code):
        print(f"no: {code!r} is not 6 digits", file=out)
        return 1
    # A guard of its own, in memory: checking here spends nothing for the running agent.
    if CodeGuard(None, time.time).check(rights.totp_secret, code).verdict is Verdict.ACCEPTED:
        print(
            f"ok: {code} is valid for {ident} now (the running agent takes each code once)",
            file=out,
        )
        return 0
    print(f"no: {code} is not valid for {ident} now (wrong secret, or the clock is off)", file=out)
    return 1
