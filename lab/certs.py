"""Certificates made by the tests with openssl: a CA, server certificates, a foreign CA."""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .waiting import require_binary


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


class TestCa:
    """A certificate authority in `workdir`: `ca.cert` is what a client trusts."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, workdir: Path, name: str = "sipagent lab CA") -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._openssl = require_binary("openssl", "the Debian package openssl")
        self.name = name
        stem = "".join(c if c.isalnum() else "-" for c in name)
        self.ca = CertPair(self.workdir / f"{stem}.crt", self.workdir / f"{stem}.key")
        self._run(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", str(self.ca.key), "-out", str(self.ca.cert),
        )  # fmt: skip

    def _run(self, *args: str) -> None:
        done = subprocess.run([self._openssl, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise AssertionError(f"openssl {' '.join(args[:2])} failed: {done.stderr}")

    def issue(
        self, name: str, hosts: list[str], days: int = 2, *, expired: bool = False
    ) -> CertPair:
        """A server certificate for `hosts` (DNS names or IP addresses), signed by this CA.

        ``expired``: valid only in January 2020 (`openssl ca` can back-date; `x509` cannot).
        """
        stem = self.workdir / name
        pair = CertPair(stem.with_suffix(".crt"), stem.with_suffix(".key"))
        csr = stem.with_suffix(".csr")
        self._run(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={hosts[0]}",
            "-keyout", str(pair.key), "-out", str(csr),
        )  # fmt: skip
        ext = stem.with_suffix(".ext")
        ext.write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
            f"subjectAltName={','.join(_san(h) for h in hosts)}\n"
        )
        if expired:
            self._sign_back_dated(csr, ext, pair.cert)
            return pair
        self._run(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca.cert), "-CAkey", str(self.ca.key),
            "-CAcreateserial", "-extfile", str(ext), "-days", str(days), "-out", str(pair.cert),
        )  # fmt: skip
        return pair

    def _sign_back_dated(self, csr: Path, ext: Path, out: Path) -> None:
        db = self.workdir / "ca-db"
        (db / "new").mkdir(parents=True, exist_ok=True)
        (db / "index.txt").touch()
        serial = db / "serial"
        if not serial.exists():
            serial.write_text("1000\n")
        cnf = db / "ca.cnf"
        cnf.write_text(
            "[ca]\ndefault_ca = lab\n[lab]\n"
            f"database = {db / 'index.txt'}\nnew_certs_dir = {db / 'new'}\n"
            f"certificate = {self.ca.cert}\nprivate_key = {self.ca.key}\n"
            f"serial = {serial}\ndefault_md = sha256\npolicy = pol\n"
            "unique_subject = no\n[pol]\ncommonName = supplied\n"
        )
        self._run(
            "ca", "-batch", "-config", str(cnf), "-notext",
            "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
            "-extfile", str(ext), "-in", str(csr), "-out", str(out),
        )  # fmt: skip


def _san(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return f"DNS:{host}"
    return f"IP:{host}"
