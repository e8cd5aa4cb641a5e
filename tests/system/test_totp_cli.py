"""`sipagent totp new|check`: a person enrols an authenticator app by scanning a QR code.

The QR codes (the PNG and the one drawn in the terminal) are read back with zbar's
`zbarimg` (Debian zbar-tools), a decoder independent of the encoder; the codes an app would
compute from the decoded secret then pass `sipagent totp check` and the agent's own rules.
"""

from __future__ import annotations

import os
import stat
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from agent.config.load import load_config
from agent.core.totp import decode_secret, totp
from lab.waiting import require_binary

CONFIG = """
[device]
id = "porch"
name = "Porch gate"
[sip]
uri = "sip:porch@127.0.0.1"
[access]
allow = ["sip:owner@127.0.0.1"]
require_code = ["gate"]
{users}
[gpio]
pin_factory = "mock"
[gpio.outputs.gate]
pin = 17
"""
ALICE = "sip:alice@127.0.0.1"


def sipagent(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("CREDENTIALS_DIRECTORY", None)
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def zbar(image: Path) -> str:
    """What zbar reads in an image: the QR code's text."""
    binary = require_binary("zbarimg", "the Debian package zbar-tools")
    result = subprocess.run(
        [binary, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(image)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def png_of_terminal_qr(lines: list[str], path: Path, scale: int = 6) -> None:
    """Redraw a QR code printed with half blocks as a PNG: what a phone's camera sees.

    Each character is two modules, top and bottom; a drawn half is light (the terminal's
    text colour on a dark background), a blank one dark.
    """
    halves = {" ": (0, 0), "\u2580": (1, 0), "\u2584": (0, 1), "\u2588": (1, 1)}
    rows: list[list[int]] = []
    for line in lines:
        pairs = [halves[ch] for ch in line]
        rows += [[p[0] for p in pairs], [p[1] for p in pairs]]
    raw = b""
    for row in rows:
        pixels = bytes(255 if light else 0 for light in row for _ in range(scale))
        raw += (b"\x00" + pixels) * scale
    width, height = len(rows[0]) * scale, len(rows) * scale

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _qr_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line and set(line) <= set(" ▀▄█")]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(CONFIG.format(users=""))
    return path


def test_a_new_user_scans_the_qr_and_their_codes_pass(tmp_path: Path, config: Path):
    png = tmp_path / "alice.png"
    result = sipagent("totp", "new", ALICE, "--config", str(config), "--png", str(png))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    uri = next(line for line in out.splitlines() if line.startswith("otpauth://"))
    # The PNG and the terminal drawing both read back as the same URI.
    assert zbar(png) == uri
    terminal_png = tmp_path / "terminal.png"
    png_of_terminal_qr(_qr_lines(out), terminal_png)
    assert zbar(terminal_png) == uri
    assert stat.S_IMODE(png.stat().st_mode) == 0o600

    parsed = urlparse(uri)
    query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    assert (parsed.scheme, parsed.netloc) == ("otpauth", "totp")
    assert unquote(parsed.path) == "/Porch gate:alice@127.0.0.1"
    assert query["issuer"] == "Porch gate"
    assert (query["algorithm"], query["digits"], query["period"]) == ("SHA1", "6", "30")
    stored = tmp_path / "totp" / "alice_127.0.0.1"
    assert stored.read_text().strip() == query["secret"]
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert len(decode_secret(query["secret"])) == 20
    # It says what to add to the config; once added, the config reads the same secret.
    assert f'[access.users."{ALICE}"]' in out
    assert 'totp_secret_file = "totp/alice_127.0.0.1"' in out
    config.write_text(
        CONFIG.format(users=f'[access.users."{ALICE}"]\ntotp_secret_file = "totp/alice_127.0.0.1"')
    )
    rights = load_config(str(config)).access.rights_of(ALICE)
    assert rights is not None and rights.totp_secret == decode_secret(query["secret"])

    # What the phone shows now passes; a code from another secret does not.
    code = totp(decode_secret(query["secret"]), time.time())
    checked = sipagent("totp", "check", ALICE, code, "--config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith(f"ok: {code} is valid for {ALICE} now")
    wrong = totp(b"another secret, 20 b", time.time())
    refused = sipagent("totp", "check", ALICE, wrong, "--config", str(config))
    assert refused.returncode == 1 and refused.stdout.startswith("no: ")


def test_the_secret_goes_where_the_config_already_expects_it(tmp_path: Path, config: Path):
    config.write_text(
        CONFIG.format(users=f'[access.users."{ALICE}"]\ntotp_secret_file = "secrets/alice"')
    )
    result = sipagent("totp", "new", f"<{ALICE}>", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "secrets" / "alice").exists()
    assert "add to the config" not in result.stdout
    assert load_config(str(config)).access.rights_of(ALICE) is not None


def test_an_existing_secret_is_kept_unless_forced(tmp_path: Path, config: Path):
    assert sipagent("totp", "new", ALICE, "--config", str(config)).returncode == 0
    stored = tmp_path / "totp" / "alice_127.0.0.1"
    first = stored.read_text()
    again = sipagent("totp", "new", ALICE, "--config", str(config))
    assert again.returncode == 1
    assert "exists: that user has a secret already (--force replaces it" in again.stderr
    assert stored.read_text() == first
    forced = sipagent("totp", "new", ALICE, "--config", str(config), "--force")
    assert forced.returncode == 0 and stored.read_text() != first


def test_a_symlink_where_the_secret_goes_is_replaced_not_followed(tmp_path: Path, config: Path):
    target = tmp_path / "elsewhere"
    target.write_text("untouched\n")
    (tmp_path / "totp").mkdir(mode=0o700)
    (tmp_path / "totp" / "alice_127.0.0.1").symlink_to(target)
    result = sipagent("totp", "new", ALICE, "--config", str(config), "--force")
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "untouched\n"
    assert not (tmp_path / "totp" / "alice_127.0.0.1").is_symlink()


def test_an_inline_secret_is_not_overwritten(config: Path):
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    config.write_text(CONFIG.format(users=f'[access.users."{ALICE}"]\ntotp_secret = "{secret}"'))
    result = sipagent("totp", "new", ALICE, "--config", str(config))
    assert result.returncode == 1
    assert "holds its secret inline (totp_secret)" in result.stderr
    assert secret in config.read_text()


def test_check_for_a_user_without_a_secret_says_so(config: Path):
    result = sipagent("totp", "check", "sip:owner@127.0.0.1", "123456", "--config", str(config))
    assert result.returncode == 1
    assert "sip:owner@127.0.0.1 has no one-time code secret" in result.stderr


def test_under_systemd_the_secret_is_read_from_the_credential_of_its_directory(
    tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch
):
    """LoadCredential=totp:/etc/sipagent/totp gives the service "totp_<file>" credentials."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "totp_alice").write_text("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n")
    config.write_text(
        CONFIG.format(users=f'[access.users."{ALICE}"]\ntotp_secret_file = "totp/alice"')
    )
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    rights = load_config(str(config)).access.rights_of(ALICE)
    assert rights is not None
    assert rights.totp_secret == decode_secret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
