"""A Debian bookworm container with a real systemd as PID 1 (systemd-nspawn), for the unit tests.

The rootfs is built once by debootstrap and cached (``ROOTFS``; CI on the same machine reuses
it); each container boots on an overlay of it, so every test module starts from a pristine
image and leaves the cache untouched. The recipe follows docs/systemd.md: this machine's init is
not systemd and its cgroups are hybrid, so nspawn runs from a cgroup of its own in the unified
hierarchy with ``SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1``, ``--register=no --keep-unit
--system-call-filter=bpf``, and commands enter it with ``nsenter -t <its PID 1> -a``.

The container shares the host's network: a service inside reaches the lab's Kamailio and
Mosquitto on 127.0.0.1, and apt and pip inside reach the same registries as the host (the
host's apt sources, CA bundle and pip settings are copied in for that).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from .waiting import log_tail, require_binary, wait_until

CACHE = Path(os.environ.get("SIPAGENT_CI_CACHE", "/var/cache/sipagent-ci"))
# Bump the suffix when the recipe below changes: the next run builds a new image.
ROOTFS = CACHE / "rootfs-bookworm-v1"
# Raspberry Pi OS Lite has python3; a minimal Debian with systemd, dbus and the CA store.
ROOTFS_PACKAGES = ("systemd", "systemd-sysv", "dbus", "ca-certificates", "python3")
# The unified (cgroup2) hierarchy: beside the v1 ones on a hybrid host like this one, or the
# only one on a host with a pure cgroup2 setup.
CGROUP_ROOT = next(
    (
        p
        for p in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))
        if (p / "cgroup.procs").exists() and (p / "cgroup.controllers").exists()
    ),
    Path("/sys/fs/cgroup/unified"),
)
# Host files that let apt and pip inside reach what the host reaches.
HOST_FILES = (
    "/etc/apt/sources.list",
    "/etc/apt/sources.list.d",
    "/etc/apt/apt.conf.d",
    "/etc/ssl/certs/ca-certificates.crt",
    "/usr/local/share/ca-certificates",
    "/etc/pip.conf",
)
_PR_SET_PDEATHSIG = 1
INSIDE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def debian_mirror() -> str:
    """The Debian mirror apt uses on this host (deb822 or one-line sources)."""
    for source in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        if not source.is_file():
            continue
        for line in source.read_text().splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and words[1].rstrip("/").endswith("/debian"):
                return words[1]
            if words[:1] == ["deb"] and any(w.rstrip("/").endswith("/debian") for w in words):
                return next(w for w in words if w.rstrip("/").endswith("/debian"))
    return "http://deb.debian.org/debian"


def cached_rootfs(log: Path) -> Path:
    """The cached bookworm rootfs; built by debootstrap (about 45 s) the first time."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "rootfs.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build even if two runs start together
        if (ROOTFS / "usr/lib/systemd/systemd").exists():
            return ROOTFS
        debootstrap = require_binary("debootstrap", "the Debian package debootstrap")
        building = ROOTFS.with_name(ROOTFS.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        argv = [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(ROOTFS_PACKAGES)}",
            "bookworm",
            str(building),
            debian_mirror(),
        ]
        with log.open("ab") as out:
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0:
            raise AssertionError(f"debootstrap failed ({result.returncode}):\n{log_tail(log)}")
        # A rename is atomic: an interrupted build never looks like a finished one.
        building.rename(ROOTFS)
        return ROOTFS


class Container:
    """One booted container on an overlay of the cached rootfs, everything under ``workdir``."""

    def __init__(self, workdir: Path, name: str = "sipagent-test") -> None:
        self.workdir = workdir
        self.name = name
        self.root = workdir / "root"
        self.log = workdir / "nspawn.log"
        self._upper = workdir / "upper"
        self._work = workdir / "work"
        self._cgroup = CGROUP_ROOT / f"sipagent-nspawn-{os.getpid()}-{id(self)}"
        self._proc: subprocess.Popen[bytes] | None = None
        self.leader: int | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def boot(self, timeout: float = 60.0) -> None:
        """Boot on a fresh overlay; a boot that fails leaves nothing behind."""
        try:
            self._boot(timeout)
        except BaseException:
            self.shutdown()
            raise

    def _boot(self, timeout: float) -> None:
        nspawn = require_binary("systemd-nspawn", "the Debian package systemd-container")
        require_binary("nsenter", "the Debian package util-linux")
        self.workdir.mkdir(parents=True, exist_ok=True)
        lower = cached_rootfs(self.workdir / "debootstrap.log")
        for d in (self.root, self._upper, self._work):
            d.mkdir(exist_ok=True)
        options = f"lowerdir={lower},upperdir={self._upper},workdir={self._work}"
        subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(self.root)], check=True
        )
        self._copy_host_files()
        self._cgroup.mkdir()
        procs = self._cgroup / "cgroup.procs"

        def into_own_cgroup() -> None:
            procs.write_text(str(os.getpid()))
            # If the tests die, nspawn gets SIGTERM and powers the container off.
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

        env = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
        argv = [
            nspawn,
            "--boot",
            f"--directory={self.root}",
            f"--machine={self.name}",
            "--register=no",
            "--keep-unit",
            "--system-call-filter=bpf",
            "--resolv-conf=copy-host",
            "--timezone=off",
            "--console=pipe",
        ]
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=into_own_cgroup,  # before exec: nspawn starts in its own cgroup
            )
        self.leader = wait_until(self._find_leader, timeout, f"container PID 1\n{self._tail()}")
        wait_until(self._booted, timeout, f"container boot to finish\n{self._tail()}", 0.1)

    def _copy_host_files(self) -> None:
        for name in HOST_FILES:
            source = Path(name)
            target = self.root / name.lstrip("/")
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            elif source.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        # The host's own apt sources replace the single one debootstrap wrote.
        if not Path("/etc/apt/sources.list").exists():
            (self.root / "etc/apt/sources.list").unlink(missing_ok=True)

    def _find_leader(self) -> int | None:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise AssertionError(
                f"systemd-nspawn exited ({self._proc.returncode}):\n{self._tail()}"
            )
        for pid in _descendants(self._proc.pid):
            if _nspid_is_one(pid):
                return pid
        return None

    def _booted(self) -> bool:
        state = self.run(["systemctl", "is-system-running"], check=False).stdout.strip()
        if state in ("running", "degraded"):
            return True
        if state in ("maintenance", "stopping"):
            raise AssertionError(f"container boot ended in {state}:\n{self._tail()}")
        return False

    def shutdown(self, timeout: float = 30.0) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            # SIGTERM asks nspawn to power the container off in order.
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._proc = None
        if os.path.ismount(self.root):
            subprocess.run(["umount", "--lazy", str(self.root)], check=False)
        _remove_cgroup(self._cgroup)

    def __enter__(self) -> Container:
        self.boot()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- inside ---------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 60.0,
        env: dict[str, str] | None = None,
        cwd: str = "/",
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside (all namespaces of PID 1), with a clean environment."""
        assert self.leader is not None
        inside_env = {"PATH": INSIDE_PATH, "LANG": "C.UTF-8", "HOME": "/root", **(env or {})}
        argv = [
            "nsenter",
            "-t", str(self.leader),
            "-a",
            "env", "-i", "-C", cwd,
            *[f"{k}={v}" for k, v in inside_env.items()],
            *argv,
        ]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(
                f"in the container, {' '.join(argv[argv.index('-i') + 1 :])} exited "
                f"{result.returncode}\nstdout:\n{result.stdout[-4000:]}\n"
                f"stderr:\n{result.stderr[-4000:]}"
            )
        return result

    def sh(self, script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        """Run a shell snippet inside."""
        return self.run(["sh", "-c", script], **kwargs)  # type: ignore[arg-type]

    def path(self, inside: str) -> Path:
        """The host path of a file inside the container."""
        return self.root / inside.lstrip("/")

    def copy_in(self, source: Path, inside: str, ignore: Sequence[str] = ()) -> None:
        """Copy a host directory into the container."""
        shutil.copytree(
            source,
            self.path(inside),
            ignore=shutil.ignore_patterns(*ignore),
            dirs_exist_ok=True,
            symlinks=True,
        )

    def _tail(self) -> str:
        return log_tail(self.log)


def _descendants(pid: int) -> Iterator[int]:
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            for child in map(int, children):
                yield child
                yield from _descendants(child)


def _nspid_is_one(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            ids = line.split()[1:]
            return len(ids) > 1 and ids[-1] == "1"
    return False


def _remove_cgroup(path: Path) -> None:
    """Remove a cgroup tree bottom-up once its processes are gone."""
    if not path.is_dir():
        return
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            sub.rmdir()

    def removed() -> bool:
        try:
            path.rmdir()
        except OSError:
            _kill_cgroup(path)  # a process lingers: the kernel reaps it, then rmdir works
            return False
        return True

    with contextlib.suppress(AssertionError):  # at worst the next run uses another name
        wait_until(removed, 10, f"cgroup {path} to empty", 0.05)


def _kill_cgroup(path: Path) -> None:
    with contextlib.suppress(OSError):
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
