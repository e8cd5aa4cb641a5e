"""RFC 3263 / RFC 2782 decisions (agent.core.srv) and where the nameservers come from
(agent.core.nameservers, agent.adapters.sip.nameservers): table-driven."""

from __future__ import annotations

import pytest

from agent.config.load import parse_config
from agent.config.model import ConfigError
from agent.core.nameservers import from_resolv_conf
from agent.core.srv import Hops, SrvTarget, is_server_failure, rfc2782_order


def t(name: str, priority: int = 10, weight: int = 50, port: int = 5060) -> SrvTarget:
    return SrvTarget(name, port, priority, weight, (f"192.0.2.{len(name)}",))


@pytest.mark.parametrize(
    ("targets", "rand", "order"),
    [
        ([t("b", 20), t("a", 10)], 0.0, ["a", "b"]),  # priority first, whatever the weight
        ([t("a", 10, 90), t("b", 10, 10)], 0.0, ["a", "b"]),  # low draw: the first by weight
        ([t("a", 10, 90), t("b", 10, 10)], 0.95, ["b", "a"]),  # high draw: the light one
        ([t("z", 10, 0), t("a", 10, 0)], 0.5, ["z", "a"]),  # all zero: in the given order
        ([t("a", 10, 0), t("b", 10, 10)], 0.0, ["b", "a"]),  # zero weight: only by chance
        ([], 0.5, []),
    ],
)
def test_rfc2782_order(targets, rand, order):
    assert [x.name for x in rfc2782_order(targets, lambda: rand)] == order


@pytest.mark.parametrize(
    ("code", "next_target"),
    [(0, True), (408, True), (503, True), (502, True), (401, False), (403, False), (486, False)],
)
def test_only_a_missing_server_moves_to_the_next_target(code, next_target):
    assert is_server_failure(code) is next_target


def test_failover_walks_the_targets_then_starts_over_after_a_lookup():
    hops = Hops("example.org", refresh_s=10, rand=lambda: 0.0)
    assert hops.needs_lookup(0)
    assert hops.resolved(0, [t("b", 20), t("a", 10), t("c", 30)]).name == "a"
    assert not hops.needs_lookup(5) and hops.needs_lookup(10)
    assert hops.failed().name == "b"
    assert hops.failed().name == "c"
    assert hops.failed() is None  # a full round: back off, look up again
    assert hops.current.name == "a" and hops.needs_lookup(1)


def test_a_success_resets_the_round():
    hops = Hops("example.org", rand=lambda: 0.0)
    hops.resolved(0, [t("a", 10), t("b", 20)])
    assert hops.failed().name == "b"
    hops.succeeded()
    assert hops.failed().name == "a"  # b failed once: the next is a, not "give up"


def test_new_records_keep_the_current_target_while_it_is_published():
    hops = Hops("example.org", rand=lambda: 0.0)
    hops.resolved(0, [t("a", 10), t("b", 20)])
    hops.failed()  # on b now
    assert hops.resolved(30, [t("a", 10), t("b", 20)]) is None  # still b: no flapping
    assert hops.current.name == "b"
    assert hops.resolved(60, [t("a", 10), t("c", 20)]).name == "a"  # b retired: the best


def test_addresses_are_every_targets():
    hops = Hops("example.org")
    hops.resolved(0, [t("a"), t("bb")])
    assert hops.addresses() == {"192.0.2.1", "192.0.2.2"}


@pytest.mark.parametrize(
    ("text", "servers"),
    [
        ("nameserver 192.0.2.53\nnameserver 2001:db8::53\n", ["192.0.2.53", "2001:db8::53"]),
        ("# none\nsearch example.org\n", ["127.0.0.1"]),  # glibc's default
        ("nameserver fe80::1%eth0\nnameserver 192.0.2.1\n", ["192.0.2.1"]),  # a zone: not usable
        ("nameserver dns.example.org\n", ["127.0.0.1"]),
        ("nameserver 1.1.1.1\n" * 2 + "nameserver 8.8.8.8\nnameserver 9.9.9.9\n"
         "nameserver 1.0.0.1\n", ["1.1.1.1", "8.8.8.8", "9.9.9.9"]),  # three, like glibc
    ],
)  # fmt: skip
def test_nameservers_from_resolv_conf(text, servers):
    assert from_resolv_conf(text) == servers


BASE = '[device]\nid = "x"\n[sip]\nuri = "sip:a@example.org"\nregistrar = "sip:example.org"\n'


def test_sip_nameservers_are_read_and_checked():
    assert parse_config(BASE + 'nameservers = ["192.0.2.53", "2001:db8::53"]\n').sip.nameservers \
        == ("192.0.2.53", "2001:db8::53")  # fmt: skip
    assert parse_config(BASE + "nameservers = []\n").sip.nameservers == ()
    assert parse_config(BASE).sip.nameservers is None
    with pytest.raises(ConfigError) as err:
        parse_config(BASE + 'nameservers = ["192.0.2.53:5353", "dns.example.org"]\n')
    assert err.value.problems == (
        "sip.nameservers[0]: '192.0.2.53:5353' is not an IP address (pjsip asks port 53; no "
        "names, ports or zones)",
        "sip.nameservers[1]: 'dns.example.org' is not an IP address (pjsip asks port 53; no "
        "names, ports or zones)",
    )


# -- edges (scripts/mutation.py): the weighted draw's running sum, every round walks them all --


@pytest.mark.parametrize(
    ("rand", "first"), [(0.0, "a"), (0.34, "b"), (0.5, "b"), (0.67, "c"), (0.99, "c")]
)
def test_equal_weights_split_the_draw_in_thirds(rand: float, first: str) -> None:
    targets = [t("a", 10, 1), t("b", 10, 1), t("c", 10, 1)]
    assert rfc2782_order(targets, lambda: rand)[0].name == first


def test_every_round_of_failures_walks_every_target() -> None:
    hops = Hops("example.org", rand=lambda: 0.0)
    hops.resolved(0, [t("a", 10), t("b", 20), t("c", 30)])
    for _ in range(2):
        assert [hops.failed() and hops.current.name for _ in range(3)] == ["b", "c", None]
        assert hops.current.name == "a"


def test_new_records_that_retire_the_current_target_start_a_new_round() -> None:
    hops = Hops("example.org", rand=lambda: 0.0)
    hops.resolved(0, [t("a", 10), t("b", 20), t("c", 30)])
    hops.failed()
    hops.failed()  # on c, two failures into the round
    assert hops.resolved(30, [t("d", 10), t("e", 20), t("f", 30)]).name == "d"
    assert [hops.failed() and hops.current.name for _ in range(3)] == ["e", "f", None]
