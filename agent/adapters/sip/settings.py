"""What pjsua2 is configured with: the endpoint's and the account's settings. Owner thread."""

from __future__ import annotations

import pjsua2 as pj

from agent.adapters.sip import nameservers
from agent.adapters.sip import net as sipnet
from agent.config.model import SipConfig
from agent.core.sipuri import parse_sip_uri


def endpoint_config(config: SipConfig, writer: pj.LogWriter, debug: bool) -> pj.EpConfig:
    cfg = pj.EpConfig()
    # The architecture rule: pjsua2 lives on the owner thread and nowhere else.
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = config.user_agent
    # No call is ever taken: with no call slot pjsua answers an INVITE 486 at once, before
    # it would open media sockets for it. (The request gate, agent.adapters.sip.gate, answers
    # INVITEs before pjsua sees them; this holds even where the gate cannot be installed.)
    cfg.uaConfig.maxCalls = 0
    # No RTP here: without its own ioqueue pjmedia starts no worker thread, which
    # would otherwise wake every 10 ms and cost 0.3 % of a core while idle.
    cfg.medConfig.hasIoqueue = False
    cfg.medConfig.threadCnt = 0
    cfg.logConfig.writer = writer
    # pjsua2 hands the writer what passes consoleLevel; pjsip's level 4+ is a firehose.
    cfg.logConfig.level = cfg.logConfig.consoleLevel = 4 if debug else 2
    cfg.logConfig.decor = 0
    sipnet.apply_stun(cfg, config)
    # pjsip's own resolver: names (SRV, A/AAAA) are looked up without blocking the owner loop.
    for server in nameservers.choose(config.nameservers):
        cfg.uaConfig.nameserver.append(server)
    return cfg


def account_config(
    config: SipConfig, tid: int, *, route: str | None = None, register: bool = True
) -> pj.AccountConfig:
    """`route`: through this server (an SRV target, agent.adapters.sip.hops) instead of the
    configured hop; `register=False`: no REGISTER when the account is added (it waits for the
    route)."""
    c = config
    ac = pj.AccountConfig()
    ac.idUri = c.uri
    ac.sipConfig.transportId = tid
    proxy = route or c.proxy or (loose_route(c.registrar) if c.registrar else None)
    if proxy:
        ac.sipConfig.proxies.append(with_transport(proxy, c.transport))
    if c.registrar:
        ac.regConfig.registrarUri = with_transport(c.registrar, c.transport)
        ac.regConfig.timeoutSec = c.reg_expires
        ac.regConfig.registerOnAdd = register
    # No media is ever set up (maxCalls 0); should pjsua still open RTP sockets, they stay
    # on loopback, on any free port.
    ac.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    ac.mediaConfig.transportConfig.port = 0
    if c.password is not None:
        cred = pj.AuthCredInfo("digest", c.realm, c.username, 0, c.password)
        ac.sipConfig.authCreds.append(cred)
    # pjsua PUBLISHes only after setOnlineStatus, and again after each re-registration
    # that finds its publication gone (see agent.adapters.sip.presence).
    ac.presConfig.publishEnabled = c.presence == "publish"
    sipnet.apply_nat(ac, c)
    return ac


def with_transport(uri: str, transport: str) -> str:
    """`uri` with a transport parameter for TCP/TLS.

    pjsua derives the Contact's transport from the registrar/proxy URI, not from the
    transport the account is bound to: without it a TCP account registers a UDP Contact.
    """
    parsed = parse_sip_uri(uri)
    if transport == "udp" or any(k == "transport" for k, _ in parsed.params):
        return uri
    return f"{uri};transport={transport}"


def loose_route(uri: str) -> str:
    """The registrar as an outbound proxy: without it an account's domain must resolve."""
    parsed = parse_sip_uri(uri)
    host = f"{parsed.scheme}:{parsed.hostport}"
    params = "".join(f";{k}={v}" if v is not None else f";{k}" for k, v in parsed.params)
    return host + params + ("" if any(k == "lr" for k, _ in parsed.params) else ";lr")
