"""The running pjsua2 binding: which one it is, and the C functions pjsua2 does not wrap.

pjsua2 wraps only part of pjsip. The binding's extension module is linked with all of
pjproject and exports its C API (docs/pjsip.md): through ctypes the agent reads how many
transactions pjsip holds and sets Timer J, and asks the binding's TLS library its name
without starting it (pjsua2's own way, listing ciphers, initialises OpenSSL: 1-3 MB).
Works with the PyPI wheel (`pjsua2/_pjsua2*.so`) and with a binding built from pjproject's
source (`_pjsua2*.so` beside `pjsua2.py`). Owner thread only, after `libInit`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from types import ModuleType
from typing import Any

from agent.core.capabilities import Capabilities, TlsLibrary

# A C function from a CDLL (ctypes' own class for it is private).
CFunction = Any

log = logging.getLogger(__name__)

# Names the extension module has in the two layouts.
_EXTENSION_NAMES = ("pjsua2._pjsua2", "_pjsua2")


def extension_path() -> str | None:
    """The file of the binding's extension module, once pjsua2 has loaded it."""
    for name in _EXTENSION_NAMES:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path:
            return str(path)
    return None


class CApi:
    """pjsip's C functions in the binding's own shared object (the one already loaded)."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._lib = library
        self._count = library.pjsip_tsx_layer_get_tsx_count
        self._count.restype = ctypes.c_uint
        self._count.argtypes = []
        self._set_timers = library.pjsip_tsx_set_timers
        self._set_timers.restype = None
        self._set_timers.argtypes = [ctypes.c_uint] * 4
        self._endpoint = library.pjsua_get_pjsip_endpt
        self._endpoint.restype = ctypes.c_void_p
        self._endpoint.argtypes = []
        self._timer_heap = library.pjsip_endpt_get_timer_heap
        self._timer_heap.restype = ctypes.c_void_p
        self._timer_heap.argtypes = [ctypes.c_void_p]
        self._timer_limit = library.pj_timer_heap_set_max_timed_out_per_poll
        self._timer_limit.restype = ctypes.c_uint
        self._timer_limit.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        self._shutdown = library.pjsip_transport_shutdown
        self._shutdown.restype = ctypes.c_int
        self._shutdown.argtypes = [ctypes.c_void_p]

    @classmethod
    def load(cls) -> CApi | None:
        """The running binding's C API, or None when it does not export it (logged)."""
        path = extension_path()
        try:
            if path is None:
                raise OSError("pjsua2's extension module is not loaded")
            return cls(ctypes.CDLL(path))
        except (OSError, AttributeError) as err:
            log.warning("pjsip's C API is not reachable (%s): Timer J stays 32 s", err)
            return None

    def shutdown_transport(self, pointer: int) -> None:
        """pjsip_transport_shutdown, what `Endpoint.transportShutdown` calls. A binding whose
        wrapper Debian 12's SWIG generated refuses its own `void *` handles there
        (docs/pjsip.md): the pointer, read from the handle, goes to pjsip directly."""
        self._shutdown(pointer)

    def transactions(self) -> int:
        """Transactions pjsip holds now (live, and completed ones waiting out Timer J)."""
        return int(self._count())

    def set_timer_j(self, ms: int) -> None:
        """How long a completed transaction lingers, for those completing from now on.

        pjsip has one value for Timer J (non-INVITE server), H (INVITE server) and B/F
        (our own requests' timeout): `td` of pjsip_tsx_set_timers. Zero means "unchanged"
        to pjsip, so at least 1 ms is set.
        """
        self._set_timers(0, 0, 0, max(1, int(ms)))

    def set_timers_per_poll(self, count: int) -> int:
        """How many expired timers each `libHandleEvents` runs; returns the previous limit.

        pjsip's default is 10 (PJSIP_MAX_TIMED_OUT_ENTRIES), while one poll may take in 50
        datagrams: under a flood, answered transactions then outlive their Timer J by far,
        waiting for their turn to expire, and memory grows with the flood's length.
        """
        endpoint = self._endpoint()
        heap = self._timer_heap(endpoint) if endpoint else None
        if not heap:
            return 0
        return int(self._timer_limit(heap, count))

    def tls_library(self) -> TlsLibrary:
        """The TLS library pjsip was linked with, by its own description, and where it is."""
        lib = self._lib
        for name in ("OpenSSL_version", "SSLeay_version"):  # OpenSSL 1.1+, 1.0.x
            if _has(lib, name):
                func = getattr(lib, name)
                func.restype = ctypes.c_char_p
                func.argtypes = [ctypes.c_int]
                # OPENSSL_VERSION (SSLEAY_VERSION) = 0: "OpenSSL 3.0.19 27 Jan 2026"
                return TlsLibrary(_text(func(0)), bundled=self._bundled(func))
        if _has(lib, "gnutls_check_version"):
            func = lib.gnutls_check_version
            func.restype = ctypes.c_char_p
            func.argtypes = [ctypes.c_char_p]
            return TlsLibrary(f"GnuTLS {_text(func(None))}", bundled=self._bundled(func))
        return TlsLibrary("")

    def _bundled(self, func: CFunction) -> bool:
        """Whether `func` comes from a library shipped inside the binding's own directory."""
        found = library_file(func)
        binding = extension_path()
        return found is not None and binding is not None and is_bundled(found, binding)


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def library_file(func: CFunction) -> str | None:
    """The shared object a C function lives in (glibc's dladdr), or None."""
    info = _DlInfo()
    try:
        dladdr = ctypes.CDLL(None).dladdr
    except AttributeError:
        return None
    if not dladdr(ctypes.cast(func, ctypes.c_void_p), ctypes.byref(info)) or not info.dli_fname:
        return None
    return info.dli_fname.decode(errors="replace")


def is_bundled(library: str, extension: str) -> bool:
    """A library beside the extension or in a wheel's vendored `<name>.libs` directory."""
    site = os.path.dirname(os.path.dirname(os.path.realpath(extension)))
    here = os.path.realpath(library)
    inside = os.path.commonpath([site, here]) == site
    return inside and not here.startswith(("/usr/lib", "/lib"))


# OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS, from OpenSSL 1.1's <openssl/crypto.h> (same in 3.x).
_NO_ERROR_TEXTS = 0x1


def skip_openssl_error_texts() -> str | None:
    """Keep the binding's OpenSSL from loading its error texts; before `libCreate`.

    OpenSSL 1.1 and newer load every library's error texts the first time pjsip touches
    them, though no TLS is used: with 2.17 linked to Debian's OpenSSL 3 that is about 0.5 MB
    of the idle agent's anonymous memory. Once this is asked, later requests for the texts are
    ignored for the life of the process, so the caller asks only when nothing in it uses TLS
    (no TLS account, no MQTT TLS): what is lost is the wording of errors that cannot happen.
    The library is the one the binding resolves: with a binding built on the system's OpenSSL,
    the same one Python's `ssl` and `hashlib` would use. Returns its file, or None
    where there is nothing to do: the binding is not loaded, or its OpenSSL is older (the
    PyPI wheel bundles 1.0.2, which loads no texts by itself) or GnuTLS.
    """
    path = extension_path()
    if path is None:
        return None
    try:
        init = ctypes.CDLL(path).OPENSSL_init_crypto
    except (OSError, AttributeError):
        return None
    init.restype = ctypes.c_int
    init.argtypes = [ctypes.c_uint64, ctypes.c_void_p]
    if not init(_NO_ERROR_TEXTS, None):
        return None
    return library_file(init) or "libcrypto"


def _has(lib: ctypes.CDLL, name: str) -> bool:
    try:
        getattr(lib, name)
    except AttributeError:
        return False
    return True


def _text(raw: bytes | None) -> str:
    return " ".join((raw or b"").decode("ascii", "replace").split())


def defers_answers(pj: ModuleType) -> bool:
    """pjproject 2.16+: the application may answer MESSAGE itself (pjproject#4598)."""
    return hasattr(pj, "DeferredResponse") and hasattr(
        pj.AccountSipConfig(), "autoRespondSipMessage"
    )


def detect(version: str, api: CApi | None) -> Capabilities:
    """What the running binding is; `version` is the endpoint's libVersion().full."""
    import pjsua2  # loaded already: the endpoint runs

    tls = api.tls_library() if api is not None else TlsLibrary("")
    return Capabilities(version, defers_answers(pjsua2), tls)
