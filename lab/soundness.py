"""The property every hostile-input test ends with: after the attack the agent is sound.

    sound = Soundness(agent, owner.status, probe=probe, base_topic=f"sipagent/{device_id}")
    sound.begin()                  # before the attack: what the outputs have done so far
    ... attack ...
    sound.check(accepted=tokens)   # after it

`check` asserts that
- the process is alive;
- the owner's `status` is answered within STATUS_DEADLINE_S;
- no output moved since `begin` (or only the pins named in `moved`: what allowed senders
  did on purpose);
- every MESSAGE the agent answered 200 reached MQTT: each token in `accepted` (put at the
  start of the message bodies by the attacker) shows up in a `B/message/in` body.

Why 5 s for `status`: on the 2-core machine under five engineers' test runs the answer
normally takes a few ms; what an attack may leave behind is a UDP socket backlog (at most
the kernel's receive buffer, a few hundred requests, under a second to drain) and the
outbox writes it causes, a few times slower under load. 5 s is several times that, half
of the watchdog's 10 s stall limit, and far below what a blocked owner loop costs (one
lookup at a black-hole DNS server takes 10 s with glibc's defaults).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from .agentproc import AgentProcess
from .configs import DEFAULT_OUTPUTS
from .mqttprobe import MqttProbe
from .rawsip import Received, TcpPeer, UdpPeer, answer_ok, request
from .waiting import wait_until_or_none

STATUS_DEADLINE_S = 5.0
T1 = 0.5  # SIP's first retransmission interval over UDP
# How long an accepted MESSAGE may take to reach MQTT after the attack (outbox, broker).
RELAY_DEADLINE_S = 20.0


class DirectOwner:
    """The owner of a direct-mode agent on a raw socket: asks `status`, reads the reply.

    In direct mode the agent believes the From; the owner is `sip:owner@<host>`. Over TCP
    the reply comes back on the owner's own connection (it goes to the request's source).
    """

    def __init__(
        self,
        agent_address: tuple[str, int],
        host: str = "127.0.0.1",
        transport: str = "udp",
        netns: str | None = None,
    ) -> None:
        self.agent = agent_address
        self.transport = transport
        self.peer = UdpPeer(host, netns=netns)
        self.host = host
        self.uri = f"sip:owner@{host}"

    def status(self, timeout: float = STATUS_DEADLINE_S) -> str:
        return self.ask("status", timeout).body

    def ask(self, command: str, timeout: float = STATUS_DEADLINE_S) -> Received:
        """Send `command`; the agent's reply MESSAGE (AssertionError after `timeout`)."""
        to = f"sip:agent@{self.agent[0]}:{self.agent[1]}"
        if self.transport == "tcp":
            return self._ask_tcp(to, command, timeout)
        seen = len(self.peer.requests())
        raw = self._message(to, command, self.peer.address, "UDP")
        # Resent as any SIP client would over UDP (RFC 3261 Timer E): after a flood the
        # kernel may have dropped the first copy; the agent takes a repeat only once.
        deadline, interval = time.monotonic() + timeout, T1
        while (left := deadline - time.monotonic()) > 0:
            self.peer.send(raw, self.agent)
            reply = wait_until_or_none(
                lambda: next(iter(self.peer.requests()[seen:]), None), min(interval, left)
            )
            if reply is not None:
                return reply
            interval = min(2 * interval, 4.0)
        raise AssertionError(f"no reply to {command!r} as the owner within {timeout:g} s")

    def _ask_tcp(self, to: str, command: str, timeout: float) -> Received:
        # A connection of its own each time: an idle one may have been closed meanwhile.
        conn = TcpPeer(self.agent, self.host, timeout=timeout)
        try:
            conn.send(self._message(to, command, conn.address, "TCP"))
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                got = conn.read_response(left)
                if got is None:
                    break
                if got.method == "MESSAGE":
                    conn.send(answer_ok(got))
                    return got
        finally:
            conn.close()
        raise AssertionError(f"no reply to {command!r} over TCP within {timeout:g} s")

    def _message(self, to: str, body: str, local: tuple[str, int], proto: str) -> bytes:
        return request(
            "MESSAGE",
            to,
            local=local,
            proto=proto,
            sender=self.uri,
            body=body,
            content_type="text/plain",
        )

    def close(self) -> None:
        self.peer.close()


class Soundness:
    def __init__(
        self,
        agent: AgentProcess,
        status: Callable[[float], str],
        *,
        outputs: Mapping[str, int] = DEFAULT_OUTPUTS,
        probe: MqttProbe | None = None,
        base_topic: str | None = None,
    ) -> None:
        self.agent = agent
        self._status = status
        self.outputs = outputs
        self.probe = probe
        self.base_topic = base_topic
        self._history: dict[int, int] = {}

    def begin(self) -> None:
        """Before the attack: how many changes each output pin has seen."""
        self._history = {pin: len(self.agent.pin_history(pin)) for pin in self.outputs.values()}

    def check(self, accepted: Iterable[str] = (), moved: Iterable[int] = ()) -> None:
        """After the attack: alive, answering, no output moved, nothing accepted lost."""
        assert self.agent.proc.poll() is None, (
            f"the agent died (exit {self.agent.proc.returncode}):\n{self.agent.log_tail()}"
        )
        reply = self._status(STATUS_DEADLINE_S)
        assert reply.startswith("ok:"), f"status answered {reply!r}"
        allowed = set(moved)
        for name, pin in self.outputs.items():
            if pin in allowed:
                continue
            changes = self.agent.pin_history(pin)[self._history.get(pin, 0) :]
            assert not changes, f"output {name} (GPIO{pin}) moved during the attack: {changes}"
        tokens = set(accepted)
        if tokens:
            self._relayed(tokens)

    def _relayed(self, tokens: set[str]) -> None:
        assert self.probe is not None and self.base_topic is not None, "no MQTT probe to check"
        topic = f"{self.base_topic}/message/in"

        def missing() -> set[str]:
            bodies = [m.json().get("body", "") for m in self.probe.messages(topic)]  # type: ignore[union-attr]
            return {t for t in tokens if not any(t in body for body in bodies)}

        if wait_until_or_none(lambda: not missing(), RELAY_DEADLINE_S):
            return
        raise AssertionError(
            f"answered 200 but not on {topic} within {RELAY_DEADLINE_S:g} s: {sorted(missing())}"
        )
