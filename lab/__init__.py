"""The test lab: real Kamailio, Mosquitto, a pjsua2 peer, the agent in its own process, DNS,
namespaces and a booted systemd, started on loopback by the tests and the benchmarks; and one
fake per port of the core (lab.fakes), for the pure tests, with the rigs and config texts
more than one of them uses (lab.rigs, lab.strategies): no test module imports another.

A package of its own (lab/pyproject.toml): `scripts/setup.sh --test` installs it, so the
benchmarks in scripts/ import it like any package. The tests find it from the checkout too
(pyproject.toml's pytest `pythonpath`). The pure suite uses only lab.fakes, lab.rigs and
lab.strategies, which need nothing but the agent itself (and hypothesis); the rest needs the
lab's servers and the agent's dependencies.
"""
