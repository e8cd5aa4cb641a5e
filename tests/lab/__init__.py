"""Test lab: real Kamailio, Mosquitto and a pjsua2 peer, started by the tests on loopback.

The project's ``tests/conftest.py`` loads the fixtures with::

    pytest_plugins = ["lab.fixtures"]

This works because ``tests/`` has no ``__init__.py``: pytest's rootdir-based import mode puts
``tests/`` itself on ``sys.path``, so this package imports as ``lab``. A test module may instead
import the fixtures it uses explicitly (``from lab.fixtures import kamailio  # noqa: F401``).
"""
