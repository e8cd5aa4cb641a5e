"""baresip 1.0 (Debian) as the reference C user agent, started headless on loopback."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from lab.kamailio import Kamailio
from lab.ports import free_port
from lab.waiting import wait_until

from .sipclient import RawSipClient

CONFIG = """\
poll_method epoll
sip_listen 127.0.0.1:{port}
module_path /usr/lib/baresip/modules
module stdio.so
module_app account.so
module_app menu.so
audio_player none
audio_source none
"""


def start_baresip(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    """baresip with one serverless account on 127.0.0.1:`port`, and no audio."""
    binary = shutil.which("baresip")
    if binary is None:
        raise RuntimeError("baresip not found: apt-get install baresip")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config").write_text(CONFIG.format(port=port))
    (workdir / "accounts").write_text("<sip:bench@127.0.0.1>;regint=0\n")
    return subprocess.Popen(
        [binary, "-f", str(workdir)],
        stdin=subprocess.PIPE,  # its stdio UI reads keys; keep it waiting, not at EOF
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_registered_baresip(workdir: Path, kam: Kamailio, user: str) -> subprocess.Popen[bytes]:
    """baresip registered as `user` at the lab's Kamailio (its outbound proxy), no audio."""
    binary = shutil.which("baresip")
    if binary is None:
        raise RuntimeError("baresip not found: apt-get install baresip-core")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (workdir / "config").write_text(CONFIG.format(port=port))
    (workdir / "accounts").write_text(
        f"<sip:{user}@{kam.domain}>;auth_pass={kam.users[user]};"
        f'outbound="sip:{kam.host}:{kam.port};lr";regint=300\n'
    )
    proc = subprocess.Popen(
        [binary, "-f", str(workdir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: _registered(kam, user), 15, f"baresip registered as {user}")
    return proc


def _registered(kam: Kamailio, user: str) -> bool:
    """Kamailio routes to `user`: the owner's MESSAGE gets 200 from baresip, not 404."""
    client = RawSipClient("owner", kam.users["owner"], kam.domain, (kam.host, kam.port))
    try:
        client.authenticate(kam.aor(user))  # the first gets the proxy's challenge
        client.send_message(kam.aor(user), "ok: are you there")
        while client.pending:
            msg = client.receive(2)
            if msg is None:
                return False
        return client.finals.get(200, 0) > 0
    finally:
        client.close()
