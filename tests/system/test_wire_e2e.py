"""What reaches the wire from MQTT: no header injected by B/message/send, well-formed PIDF for
any note. Seen by a bare UDP socket in the test (every byte as sent), a pjsua2 peer and
Kamailio's presence server (which refuses a PUBLISH whose PIDF is not well-formed XML).
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from agent.core.presence import from_xml_text
from lab.configs import agent_toml
from lab.ports import free_port
from lab.waiting import wait_until

PIDF = "{urn:ietf:params:xml:ns:pidf}"
# A note that breaks PIDF unescaped: an entity, and markup that would add a tuple.
CRAFTED = 'Tom & Jerry </note></tuple><tuple id="x"><status><basic>closed</basic></status><note>'


@dataclass(frozen=True)
class SipRequest:
    method: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes

    def header(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]


class RawUas:
    """A bare SIP endpoint on a UDP socket: records every request exactly as it arrived and
    answers it 200 OK; sends a SUBSCRIBE of its own when asked. Nothing parses for it."""

    def __init__(self, user: str = "bob") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.uri = f"sip:{user}@127.0.0.1:{self.port}"
        self.requests: list[SipRequest] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True, name="raw-uas")
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                data, source = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("utf-8", "replace").split("\r\n")
            if lines[0].startswith("SIP/2.0"):
                continue  # a response to our SUBSCRIBE
            headers = [tuple(p.strip() for p in line.split(":", 1)) for line in lines[1:]]
            request = SipRequest(lines[0].split(" ")[0], headers, body, data)  # type: ignore[arg-type]
            self.sock.sendto(self._ok(request), source)
            with self._cond:
                self.requests.append(request)
                self._cond.notify_all()

    @staticmethod
    def _ok(request: SipRequest) -> bytes:
        lines = ["SIP/2.0 200 OK"]
        for name in ("Via", "From", "Call-ID", "CSeq"):
            lines += [f"{name}: {value}" for value in request.header(name)]
        to = request.header("To")[0]
        if ";tag=" not in to:
            to += f";tag=raw{secrets.token_hex(3)}"
        lines.append(f"To: {to}")
        if request.method == "SUBSCRIBE":
            lines.append("Expires: 300")
        lines += ["Content-Length: 0", "", ""]
        return "\r\n".join(lines).encode()

    def subscribe(self, target: str, from_uri: str) -> None:
        """SUBSCRIBE to the presence of `target` ("user@host:port") as `from_uri`."""
        branch, tag, call_id = (secrets.token_hex(6) for _ in range(3))
        request = (
            f"SUBSCRIBE sip:{target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};rport;branch=z9hG4bK{branch}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <{from_uri}>;tag={tag}\r\n"
            f"To: <sip:{target}>\r\n"
            f"Call-ID: {call_id}@127.0.0.1\r\n"
            "CSeq: 1 SUBSCRIBE\r\n"
            f"Contact: <sip:{from_uri.split(':')[1].split('@')[0]}@127.0.0.1:{self.port}>\r\n"
            "Event: presence\r\n"
            "Accept: application/pidf+xml\r\n"
            "Expires: 300\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        host, port = target.split("@")[1].split(":")
        self.sock.sendto(request.encode(), (host, int(port)))

    def wait(self, match: Callable[[SipRequest], bool], what: str, timeout: float = 10.0):  # type: ignore[no-untyped-def]
        def find() -> SipRequest | None:
            with self._cond:
                return next((r for r in self.requests if match(r)), None)

        return wait_until(find, timeout, what)

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def _direct_agent(agent_factory, mosquitto, device_id, presence="off"):  # type: ignore[no-untyped-def]
    port = free_port()
    config = agent_toml(
        listen=f"127.0.0.1:{port}",
        mosquitto=mosquitto,
        device_id=device_id,
        presence=presence,
        allow=("owner", "mqtt:local"),
    )
    agent = agent_factory(config)
    agent.wait_ready()
    return agent, f"agent@127.0.0.1:{port}"


# --- B/message/send: nothing injected ------------------------------------------------------


def test_message_send_fields_cannot_add_a_header_on_the_wire(
    mosquitto, agent_factory, probe_factory, device_id
):
    B = f"sipagent/{device_id}"
    probe = probe_factory(f"{B}/#")
    agent, _ = _direct_agent(agent_factory, mosquitto, device_id)
    probe.wait_for(f"{B}/availability", lambda m: m.payload == b"online", consume=False)
    uas = RawUas()
    try:
        attempts = {
            "ct-crlf": {"content_type": "text/plain\r\nX-Injected: content_type"},
            "ct-lf": {"content_type": "text/plain\nX-Injected: content_type"},
            "ct-param": {"content_type": 'text/plain; x="a\r\nX-Injected: param"'},
            "to-headers": {"to": f"{uas.uri}?X-Injected=to"},
            "to-crlf": {"to": f"{uas.uri}\r\nX-Injected: to"},
            "id-crlf": {"id": "x\r\nX-Injected: id"},
        }
        for name, fields in attempts.items():
            request = {"id": name, "to": uas.uri, "body": "never sent", **fields}
            probe.publish(f"{B}/message/send", json.dumps(request))
        for name in attempts:
            if name == "id-crlf":
                continue
            sent = probe.wait_for(f"{B}/message/sent", lambda m, n=name: m.json()["id"] == n)
            assert sent.json()["ok"] is False and sent.json()["code"] is None, sent.json()
        refused_id = probe.wait_for(f"{B}/message/sent", lambda m: "id" in m.json()["reason"])
        assert '"id" contains a control character' in refused_id.json()["reason"]

        # What SIP does allow in a body arrives as a body: framed by Content-Length.
        body = "line one\r\nX-Injected: body\r\n\r\nINVITE sip:x SIP/2.0\x00 after NUL é"
        good = {
            "id": "good",
            "to": uas.uri,
            "body": body,
            "content_type": "text/plain;charset=utf-8",
        }
        probe.publish(f"{B}/message/send", json.dumps(good))
        assert probe.wait_for(f"{B}/message/sent", lambda m: m.json()["id"] == "good").json()["ok"]
        messages = [r for r in uas.requests if r.method == "MESSAGE"]
        assert len(messages) == 1, [r.raw for r in messages]
        (message,) = messages
        head = message.raw.partition(b"\r\n\r\n")[0]
        assert b"X-Injected" not in head
        assert message.header("Content-Type") == ["text/plain;charset=utf-8"]
        assert message.body.decode() == body
        assert message.header("Content-Length") == [str(len(body.encode()))]
    finally:
        uas.close()
    assert agent.proc.poll() is None


# --- presence notes: well-formed PIDF, the note intact -------------------------------------


def _pidf_note(request: SipRequest) -> tuple[int, list[str]]:
    """(number of tuples, every note's text) read by a conforming XML parser."""
    root = ET.fromstring(request.body)
    notes = [n.text or "" for n in root.iter() if n.tag.endswith("}note")]
    return len(root.findall(f"{PIDF}tuple")), notes


def test_serve_mode_notify_carries_any_note_as_well_formed_pidf(
    mosquitto, agent_factory, probe_factory, peer_factory, device_id
):
    B = f"sipagent/{device_id}"
    probe = probe_factory(f"{B}/#")
    agent, target = _direct_agent(agent_factory, mosquitto, device_id, presence="serve")
    probe.wait_for(f"{B}/availability", lambda m: m.payload == b"online", consume=False)
    uas = RawUas("owner")
    watcher = peer_factory(uri="sip:owner@127.0.0.1")
    try:
        uas.subscribe(target, "sip:owner@127.0.0.1")
        uas.wait(lambda r: r.method == "NOTIFY" and b"<basic>open" in r.body, "first NOTIFY")
        watcher.subscribe(f"sip:{target}")
        watcher.wait_buddy(lambda e: e["basic"] == "open")

        probe.publish(f"{B}/presence/set", json.dumps({"status": "busy", "note": CRAFTED}))
        notify = uas.wait(
            lambda r: r.method == "NOTIFY" and b"Tom &amp; Jerry" in r.body, "NOTIFY with the note"
        )
        tuples, notes = _pidf_note(notify)
        assert tuples == 1 and notes and all(n == CRAFTED for n in notes), notify.body
        # pjsua's own parser decodes no entities: what it hands over decodes to the note.
        seen = watcher.wait_buddy(lambda e: e["activity"] == "busy")
        assert from_xml_text(seen["rpid_note"]) == CRAFTED

        # The owner's SIP command takes the same path.
        watcher.send(f"sip:{target}", "presence away Tom & Jerry <3")
        notify = uas.wait(lambda r: r.method == "NOTIFY" and b"&lt;3" in r.body, "second NOTIFY")
        assert _pidf_note(notify)[1][0] == "Tom & Jerry <3"
        state = probe.wait_for(f"{B}/presence/state", lambda m: m.json()["status"] == "away")
        assert state.json()["note"] == "Tom & Jerry <3"
    finally:
        uas.close()
    assert agent.proc.poll() is None


def test_publish_mode_presence_server_accepts_and_relays_any_note(
    kamailio_factory, agent_factory, peer_factory
):
    server = kamailio_factory()
    agent = agent_factory(agent_toml(server, presence="publish"))
    agent.wait_ready()
    watcher = peer_factory("watcher", server=server)
    watcher.subscribe(server.aor("agent"))
    watcher.wait_buddy(lambda e: e["basic"] == "open")
    owner = peer_factory("owner", server=server)
    for note in (CRAFTED, "Tom & Jerry <3 \"quoted\" 'single' ]]> done"):
        owner.send(server.aor("agent"), f"presence busy {note}")
        reply = owner.wait_message()["body"]
        assert reply == f"ok: presence busy — {note}", reply
        # Kamailio parsed the PUBLISH (libxml2 refuses malformed PIDF) and notified the note.
        seen = watcher.wait_buddy(lambda e, n=note: from_xml_text(e["rpid_note"]) == n)
        assert seen["activity"] == "busy"
        owner.send(server.aor("agent"), "presence available")
        owner.wait_message()
        watcher.wait_buddy(lambda e: e["activity"] == "unknown")
    assert agent.proc.poll() is None
