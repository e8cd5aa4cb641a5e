"""baresip 1.0 (Debian) as the reference C user agent, started headless on loopback."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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
