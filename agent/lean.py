"""Import less: modules the libraries import and the configured agent never uses.

A Pi Zero 2 W has 512 MB for everything it runs, and what a small Pi pays for is anonymous
memory: the objects each imported module creates, for the life of the service. paho-mqtt
imports `ssl` (and OpenSSL) and `urllib.request` (with `http.client` and `email`) for TLS and
for proxies; gpiozero imports `importlib.metadata` (with `zipfile`, `email`, `csv`, ...) to
find pin factories, `colorzero` for RGB LEDs, `statistics` for analog sensors; dataclasses
and gpiozero import `inspect` (with `ast` and `dis`). On the example config these were
5 MB of anonymous memory and 9 MB resident (README, "Memory and floods").

A deferred module is a stand-in in `sys.modules`: importing it costs nothing, and the first
attribute anyone reads from it imports the real module and takes over its namespace, so
the code that holds the stand-in works as before, only later. A library that reads a name
while it is imported (`from m import f`) gets it from the stand-in: a forwarder that imports
the module when called, or, for two one-line functions, the function itself. `ssl` is
deferred only when no TLS is configured for MQTT (pjsip has its own TLS library).
"""

from __future__ import annotations

import codecs
import importlib
import importlib.machinery
import os
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.config.model import Config

_LOCK = threading.RLock()


class DeferredModule(types.ModuleType):
    """Stands in for a module until an attribute of it is first read."""

    def __init__(self, name: str, ready: dict[str, Any] | None = None) -> None:
        super().__init__(name)
        # A spec like a loaded module's: `import name` finds it and imports nothing.
        self.__spec__ = importlib.machinery.ModuleSpec(name, None)
        self.__dict__.update(ready or {})
        self._deferred_loaded = False

    def __getattr__(self, attr: str) -> Any:
        # Only called for attributes the stand-in lacks: after the load, none are missing.
        if attr.startswith("__") and attr.endswith("__"):
            # The import system probes `__path__` on every `from m import x`: that is not
            # a use. No code reads another dunder of these modules.
            raise AttributeError(attr)
        return getattr(self._load(), attr)

    def _load(self) -> types.ModuleType:
        name = self.__name__
        with _LOCK:
            if sys.modules.get(name) is self:
                del sys.modules[name]
            real = importlib.import_module(name)
            self.__dict__.update(real.__dict__)
            self._deferred_loaded = True
        return real

    @property
    def loaded(self) -> bool:
        """True once the real module has been imported in its place."""
        return bool(self.__dict__.get("_deferred_loaded"))


# Modules whose stand-in offers any name as a class stand-in (DeferredClasses).
CLASS_MODULES = frozenset(
    {"gpiozero.boards", "gpiozero.spi_devices", "gpiozero.internal_devices", "gpiozero.fonts"}
)


class DeferredClasses(DeferredModule):
    """Stands in for a module whose names are read at import and used later: a library's
    `__init__` that does `from .boards import LEDBoard, ...` for its users. Each name read
    is a stand-in for that class (_lazy_class); using one imports the module."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        stand_in = self.__dict__[attr] = _lazy_class(self.__name__, attr)
        return stand_in


def _real_module(name: str) -> types.ModuleType:
    """The module itself, imported now if need be, never its stand-in."""
    module = sys.modules.get(name)
    if isinstance(module, DeferredModule):
        return module._load()
    return importlib.import_module(name)


def _forwarder(module: str, name: str) -> Callable[..., Any]:
    """A function that imports `module` when first called and calls its `name`."""

    def forward(*args: Any, **kwargs: Any) -> Any:
        return getattr(_real_module(module), name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    return forward


def _forwarders(module: str, *names: str) -> dict[str, Any]:
    return {name: _forwarder(module, name) for name in names}


class _LazyClass:
    """A stand-in for a class: calling it, reading an attribute of it, `isinstance` and
    `issubclass` against it and subclassing it all go to the real class, imported then.

    An instance, not a class: 51 of them stand in for gpiozero's boards alone, and a class
    object costs twenty times the memory of this one.
    """

    __slots__ = ("_real_module", "_real_name")

    def __init__(self, module: str, name: str) -> None:
        self._real_module = module
        self._real_name = name

    def _real(self) -> type:
        cls: type = getattr(_real_module(self._real_module), self._real_name)
        return cls

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._real()(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._real(), attr)

    def __instancecheck__(self, obj: object) -> bool:
        return isinstance(obj, self._real())

    def __subclasscheck__(self, sub: type) -> bool:
        return issubclass(sub, self._real())

    def __mro_entries__(self, bases: tuple[object, ...]) -> tuple[type]:
        # `class Mine(Stand_in)` derives from the real class.
        return (self._real(),)

    def __repr__(self) -> str:
        return f"<stand-in for {self._real_module}.{self._real_name}>"


def _lazy_class(module: str, name: str) -> Any:
    """A stand-in for `module.name`, a class (see _LazyClass)."""
    return _LazyClass(module, name)


def _idna_encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
    """encodings.idna's encode, whose ASCII path this repeats; any other text goes to it.

    Python encodes every host name given to `socket.getaddrinfo` with the "idna" codec, so
    paho's first connection would import encodings.idna (stringprep, the Unicode 3.2
    tables: 0.3 MB) for a name like "localhost".
    """
    if errors == "strict" and text.isascii():
        labels = text.split(".")
        if all(0 < len(label) < 64 for label in labels[:-1]) and len(labels[-1]) < 64:
            return text.encode("ascii"), len(text)
    return _real_idna().encode(text, errors)


def _real_idna() -> codecs.Codec:
    return _real_module("encodings.idna").Codec()


def _idna_regentry() -> codecs.CodecInfo:
    """The "idna" codec: ASCII names encoded here, everything else by encodings.idna."""

    def real(name: str) -> Callable[..., Any]:
        return lambda *args: getattr(_real_module("encodings.idna"), name)(*args)

    return codecs.CodecInfo(
        name="idna",
        encode=_idna_encode,
        decode=lambda data, errors="strict": _real_idna().decode(data, errors),
        incrementalencoder=real("IncrementalEncoder"),
        incrementaldecoder=real("IncrementalDecoder"),
        streamwriter=real("StreamWriter"),
        streamreader=real("StreamReader"),
    )


def _isbuiltin(obj: object) -> bool:
    """inspect.isbuiltin, as inspect defines it, without importing inspect."""
    return isinstance(obj, types.BuiltinFunctionType)


def _system() -> str:
    """platform.system() on Linux and every POSIX system: what uname says (platform.uname)."""
    return os.uname().sysname


class _NotSsl(Exception):
    """Stands in for ssl's SSLWant*Error: a plain socket never raises them."""


def deferrable(config: Config | None) -> dict[str, dict[str, Any]]:
    """Module name -> what it must offer at once, for what `config` does not need.

    A library that does `from m import f` reads `f` while it is imported: such functions
    are offered as forwarders that import the module when they are first called. Without a
    config (before it is read), what no config needs at start.
    """
    modules: dict[str, dict[str, Any]] = {
        # paho: proxies from the environment (only with PySocks installed).
        "urllib.request": {},
        # gpiozero: pin factories by entry point (pin_factory = "auto" only), the fonts of
        # seven-segment displays, smoothing of analog sensors, ping and load-average devices;
        # RGB LEDs (colorzero, and its colour conversions). The agent opens none of them.
        "importlib.metadata": _forwarders("importlib.metadata", "entry_points"),
        "importlib.resources": {},
        "statistics": _forwarders("statistics", "median", "mean"),
        "fractions": _forwarders("fractions", "Fraction"),
        "colorzero": _forwarders("colorzero", "Color"),
        "pprint": _forwarders("pprint", "pformat"),  # the repr of an LED board
        "subprocess": {},
        # shutil (argparse's terminal width): archive formats.
        "bz2": {},
        "lzma": {},
        # dataclasses: a signature for a class without a docstring (every agent dataclass
        # has one); gpiozero: a callback's signature (the agent's are builtins:
        # agent.adapters.inputs).
        # With it go ast and dis: 0.7 MB.
        "inspect": {"isbuiltin": _isbuiltin},
        # logging: formatting an exception, when there is one (with linecache, tokenize).
        "traceback": {},
        # gpiozero: the text of a board's pin diagram. Its import compiles the word-splitting
        # patterns of TextWrapper (0.15 MB).
        "textwrap": _forwarders("textwrap", "dedent"),
        # The jitter of registration retries and the order of equal SRV targets, both only
        # once something failed or a name is looked up (the default `rand` of
        # agent.core.registration.Keeper and agent.core.srv.Hops).
        "random": _forwarders("random", "random"),
        # uuid and paho: "is this Linux? Windows?", at import.
        "platform": {"system": _system},
        # paho: the WebSocket handshake; hmac: one-time codes (agent.core.totp), when checked.
        # Either would load the system's libcrypto (3.7 MB resident) at start.
        "hashlib": {},
        "_hashlib": {},
        "hmac": {},
        # gpiozero: the fonts of seven-segment displays (pathlib brings urllib.parse, fnmatch
        # and ntpath: 0.7 MB); paho: proxies and WebSockets. (The PyPI wheel of pjsua2
        # imports pathlib itself; a binding built from pjproject does not.)
        "pathlib": {"Path": _lazy_class("pathlib", "Path")},
        # pathlib reads this one at import (for Path.as_uri): where the binding loads
        # pathlib, urllib.parse still waits (0.3 MB).
        "urllib.parse": _forwarders("urllib.parse", "quote_from_bytes"),
        # The "idna" codec for ASCII host names (_idna_encode). The codec is looked up once
        # per process, while its stand-in is in place (deferred_imports), and kept:
        # encodings' search function asks for these two.
        "encodings.idna": {"getregentry": _idna_regentry, "getaliases": lambda: ()},
    }
    # gpiozero's __init__ imports every device it has; the agent uses output and input
    # devices only, not boards, SPI ADCs or the Pi's internal devices (0.35 MB).
    modules.update({name: {} for name in CLASS_MODULES})
    if config is not None and (config.mqtt is None or not config.mqtt.tls):
        # paho's TLS (pjsip has its own TLS library). paho names these two in `except`
        # clauses around every socket read, which would load ssl on the first disconnect.
        modules["ssl"] = {"SSLWantReadError": _NotSsl, "SSLWantWriteError": _NotSsl}
    return modules


def forget(package: str) -> None:
    """Drop `package` (and its submodules) from `sys.modules` and free them, if nothing else
    holds them: what the service uses once at start, such as tomllib's parser for the config
    file (a reload imports it again). Collected now, so that its memory goes to what is
    imported next instead of growing the heap past it."""
    import gc

    with _LOCK:
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]
    gc.collect()


@contextmanager
def deferred_imports(modules: dict[str, dict[str, Any]]) -> Iterator[None]:
    """Within the block, importing one of `modules` (not yet imported) imports a stand-in.

    After the block, the stand-ins leave `sys.modules`: whoever imports them later gets the
    real module, and those who took a stand-in keep it until they use it.
    """
    placed: dict[str, DeferredModule] = {}
    with _LOCK:
        for name, ready in modules.items():
            if name not in sys.modules:
                kind = DeferredClasses if name in CLASS_MODULES else DeferredModule
                placed[name] = sys.modules[name] = kind(name, ready)
        for name, stand_in in placed.items():
            parent, _, child = name.rpartition(".")
            if parent and name not in CLASS_MODULES:
                # `import a.b` binds `a`, and code reads `a.b.x`: `a.b` must be there.
                # (A CLASS_MODULES package is not imported here: its own __init__ reads
                # the names, and the config may need no GPIO at all.)
                setattr(importlib.import_module(parent), child, stand_in)
        if "encodings.idna" in placed:
            # Codecs are cached on first lookup: this one stays the stand-in's.
            codecs.lookup("idna")
    try:
        yield
    finally:
        with _LOCK:
            for name, stand_in in placed.items():
                if sys.modules.get(name) is stand_in:
                    del sys.modules[name]
