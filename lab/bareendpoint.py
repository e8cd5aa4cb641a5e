"""A pjsua2 endpoint set up as the agent sets up its own, with nothing else in the process.

For measuring the binding alone (scripts/benchlib/memlayers.py) and for reaching its C API
(tests/adapters/test_binding.py). pjsua2 allows one endpoint per process: use it in a process of its
own.
"""

from __future__ import annotations

from typing import Any


def bare_endpoint() -> Any:
    """A created and initialised endpoint: one owner thread, no media thread, no log."""
    import pjsua2 as pj

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.medConfig.hasIoqueue = False
    cfg.medConfig.threadCnt = 0
    cfg.logConfig.level = cfg.logConfig.consoleLevel = 0
    ep.libInit(cfg)
    return ep
