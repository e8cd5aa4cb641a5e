"""The adapters against their real libraries, in this process; the contract test runs the
same checks on each port's fake and its adapter."""

from lab.fixtures import *  # noqa: F403 (the lab's fixtures, for every test here)
