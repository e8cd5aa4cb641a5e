"""The agent as a whole: real servers, agent processes, namespaces, a booted systemd."""

from lab.fixtures import *  # noqa: F403 (the lab's fixtures, for every test here)
