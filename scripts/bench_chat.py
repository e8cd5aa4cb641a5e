"""What reading chat clients' messages costs the owner thread: CPIM unwrapped, a deflated
notice inflated and parsed, a notice built. Prints microseconds per call (best of 5).

    .venv/bin/python scripts/bench_chat.py
"""

from __future__ import annotations

import timeit
import zlib
from dataclasses import replace

from agent.core import chat, cpim, imdn
from agent.core.messages import IncomingMessage

# As linphonec 5.1 sends them (tests/pure/test_chat.py has the captured bodies).
MESSAGE = (
    "From: <sip:owner@pbx.example.org>\r\nTo: <sip:porch@pbx.example.org>\r\n"
    "DateTime: 2026-12-01T03:23:24Z\r\nNS: imdn <urn:ietf:params:imdn>\r\n"
    "imdn.Message-ID: Fo8k6As19CJd\r\n"
    "imdn.Disposition-Notification: positive-delivery, negative-delivery, display\r\n"
    "\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\non lamp"
)
XML = imdn.notice_xml("Fo8k6As19CJd", "delivered", "2026-12-01T03:23:07Z")
NOTICE = cpim.build(
    "sip:owner@pbx.example.org", "sip:porch@pbx.example.org", imdn.CONTENT_TYPE, XML,
    datetime="2026-12-01T03:23:24Z", content_headers=(("Content-Disposition", "notification"),),
)  # fmt: skip


def main() -> None:
    base = IncomingMessage.new(
        from_uri="<sip:owner@pbx.example.org>", to_uri="<sip:porch@pbx.example.org>",
        contact="", body=MESSAGE, content_type="message/cpim", source="192.0.2.7:5060",
        transport="udp",
    )  # fmt: skip
    plain = replace(base, body="on lamp", content_type="text/plain")
    deflated = replace(base, raw_body=zlib.compress(NOTICE.encode()), content_encoding="deflate")
    bomb = replace(plain, raw_body=zlib.compress(b"\0" * 10_000_000), content_encoding="deflate")
    cases = {
        "plain text/plain (no wrapper)": lambda: chat.read(plain),
        "Linphone CPIM message with IMDN request": lambda: chat.read(base),
        "Linphone deflated notice": lambda: chat.read(deflated),
        "10 MB deflate bomb (refused at 16 KiB)": lambda: chat.read(bomb),
        "building a notice": lambda: cpim.build(
            "sip:porch@pbx.example.org", "sip:owner@pbx.example.org", imdn.CONTENT_TYPE,
            imdn.notice_xml("Fo8k6As19CJd", "displayed", "2026-12-01T03:23:24Z"),
            datetime="2026-12-01T03:23:25Z",
        ),
    }  # fmt: skip
    for name, fn in cases.items():
        runs = 2000
        best = min(timeit.repeat(fn, number=runs, repeat=5)) / runs
        print(f"{name:45s} {best * 1e6:8.1f} µs")


if __name__ == "__main__":
    main()
