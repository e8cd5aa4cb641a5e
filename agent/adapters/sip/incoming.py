"""A received MESSAGE as the agent reads it, from what pjsua2's `onInstantMessage` hands over:
every string cleaned (agent.core.siptext), the raw request parsed for what pjsua2 does not say
(its dedupe key, a body cut short, the body's bytes and encoding: agent.core.sipmsg).
"""

from __future__ import annotations

import pjsua2 as pj

from agent.adapters.sip.accounts import Slot
from agent.core.messages import IncomingMessage
from agent.core.sipmsg import parse_request
from agent.core.siptext import clean, original_bytes


def incoming(prm: pj.OnInstantMessageParam, slot: Slot, key: str) -> IncomingMessage:
    """The MESSAGE `slot`'s account received, with `key` as its id (agent.adapters.sip.answers
    holds the request by it)."""
    rdata = prm.rdata
    request = parse_request(original_bytes(rdata.wholeMsg))
    return IncomingMessage.new(
        from_uri=clean(prm.fromUri),
        to_uri=clean(prm.toUri),
        contact=clean(prm.contactUri),
        body=clean(prm.msgBody),
        content_type=clean(prm.contentType),
        source=clean(rdata.srcAddress),
        transport=slot.config.transport,
        account=slot.name,
        request_key=request.key() if request else None,
        truncated=request is not None and request.truncated,
        raw_body=request.body if request is not None else None,
        content_encoding=(request.first("content-encoding") or "") if request else "",
        message_id=key,
    )
