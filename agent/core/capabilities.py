"""Which pjproject the agent runs on, what it can do there, and which security fixes it lacks.

Two kinds of binding exist (docs/pjsip.md): the PyPI wheel (pjproject 2.15.1, x86_64 only,
with OpenSSL 1.0.2k inside), and one a Pi owner builds from pjproject 2.16 or newer. They
differ in how a MESSAGE is answered (agent.adapters.sip.answers) and in the fixes they carry.
The agent says which it runs on at start, in `status` and in `diagnostics()` (a dict for a
Home Assistant diagnostic sensor, through agent.core.diagnostics). Everything here is pure;
the SIP adapter reads the running binding (agent.adapters.sip.binding.detect).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import date

from agent.core.logfields import journal_fields
from agent.core.record import record

log = logging.getLogger(__name__)


@record
class Fix:
    """A security fix in a pjproject release."""

    version: str  # the first release that has it
    ref: str  # CVE, GitHub advisory or pull request
    what: str
    part: str  # which part of pjproject (PARTS)


# Parts of pjproject, and whether this agent runs them. Media, codecs and ICE are never
# used: calls are rejected before any media flows. pjsip's DNS resolver is: it gets the
# system's nameservers unless `sip.nameservers = []` (agent.config.nameservers), and parses every
# answer, forged ones included.
PARTS = {
    "sip-parser": True,  # every request anyone sends
    "incoming-call": True,  # every INVITE, before the agent rejects it
    "client-auth": True,  # digest answers to the registrar and proxy
    "presence-server": True,  # SUBSCRIBE, answered in serve mode
    "media": False,
    "ice": False,
    "dns": True,  # SRV and A/AAAA lookups of registrars and proxies (agent.adapters.sip.dns)
}

# From pjproject's history (its repository, tags 2.15.1..2.17) and its advisories.
KNOWN_FIXES: tuple[Fix, ...] = (
    Fix("2.16", "pjproject#4503", "crash when an INVITE fails verification", "incoming-call"),
    Fix("2.16", "pjproject#4331", "use of a freed authentication session (crash)", "client-auth"),
    Fix("2.16", "pjproject#4661", "use-after-free when rewriting SDP payload types", "media"),
    Fix("2.17", "CVE-2026-28799", "heap use-after-free on SUBSCRIBE Expires: 0", "presence-server"),
    Fix("2.17", "GHSA-x5pq-qrp4-fmrj", "out-of-bounds read parsing multipart bodies", "sip-parser"),
    Fix("2.17", "pjproject#4863", "signed integer overflow parsing Content-Length", "sip-parser"),
    Fix("2.17", "pjproject#4902", "malformed header handling in the SIP parser", "sip-parser"),
    Fix("2.17", "pjproject#4912", "stack buffer overflow creating a digest", "client-auth"),
    Fix("2.17", "CVE-2026-41416", "integer overflow in stream buffers (asymmetric ptime)", "media"),
    Fix("2.17", "GHSA-j29p-pvh2-pvqp", "buffer overflow in ICE with a long username", "ice"),
    Fix("2.17", "pjproject@5311aee", "heap buffer overflow in the DNS parser", "dns"),
)
NEWEST_KNOWN = "2.17"

# When upstream support ended (https://openssl-library.org/policies/releasestrat/).
# Distributions may patch a release longer (Debian 12 does for its OpenSSL 3.0).
OPENSSL_END_OF_LIFE = {
    "1.0.2": date(2019, 12, 31),
    "1.1.0": date(2019, 9, 11),
    "1.1.1": date(2023, 9, 11),
    "3.0": date(2026, 9, 7),
    "3.1": date(2025, 3, 14),
    "3.2": date(2025, 11, 23),
    "3.3": date(2026, 4, 9),
    "3.4": date(2026, 10, 22),
}


def version_key(version: str) -> tuple[int, ...]:
    """'2.15.1' -> (2, 15, 1); a suffix ('2.16-dev') is ignored."""
    numbers = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(n) for n in numbers.group().split(".")) if numbers else ()


def missing_fixes(
    version: str, fixes: Iterable[Fix] = KNOWN_FIXES, *, used_only: bool = True
) -> list[Fix]:
    """The fixes `version` lacks, of the parts the agent runs (`used_only`) or all."""
    have = version_key(version)
    return [
        f
        for f in fixes
        if have < version_key(f.version) and (PARTS.get(f.part, True) or not used_only)
    ]


@record
class TlsLibrary:
    """The binding's TLS library, as it names itself ("" when there is none)."""

    text: str  # e.g. "OpenSSL 1.0.2k-fips 26 Jan 2017", "GnuTLS 3.7.9"
    # Shipped inside the binding (the wheel's copy): no distribution ever updates it.
    bundled: bool = False

    @property
    def available(self) -> bool:
        return bool(self.text)

    @property
    def series(self) -> str | None:
        """OpenSSL's release series: '1.0.2', '1.1.1', '3.0', ...; None for others."""
        found = re.match(r"OpenSSL (\d+)\.(\d+)\.(\d+)", self.text)
        if found is None:
            return None
        major, minor, patch = found.groups()
        return f"{major}.{minor}" if int(major) >= 3 else f"{major}.{minor}.{patch}"

    def end_of_life(self) -> date | None:
        series = self.series
        return OPENSSL_END_OF_LIFE.get(series) if series else None


@record
class Capabilities:
    """What the running binding is, and what it can do."""

    pjproject: str  # e.g. "2.15.1"
    deferred_responses: bool  # 2.16+: a MESSAGE is answered once it is stored
    tls: TlsLibrary

    def missing(self) -> list[Fix]:
        return missing_fixes(self.pjproject)

    def summary(self) -> str:
        """The start-up line: version, how MESSAGEs are answered, TLS."""
        deferred = (
            "yes (MESSAGE answered after it is stored)"
            if self.deferred_responses
            else "no (pjsua answers 200 before the agent sees a MESSAGE; 2.16+ can defer)"
        )
        return (
            f"pjproject {self.pjproject}; deferred MESSAGE responses: {deferred}; "
            f"TLS: {self.tls.text or 'none'}"
        )

    def warnings(self, today: date) -> list[str]:
        """What an owner should act on: missing security fixes, a TLS library past support."""
        found = []
        missing = self.missing()
        if missing:
            refs = ", ".join(f"{f.ref} ({f.what})" for f in missing)
            found.append(
                f"pjproject {self.pjproject} lacks {len(missing)} security fixes of "
                f"{_releases(missing)} in parts the agent uses: {refs}; build {NEWEST_KNOWN} "
                "(README: pjsua2 on ARM)"
            )
        ended = self.tls.end_of_life()
        if ended is not None and ended <= today and self.tls.bundled:
            found.append(
                f"the binding brings its own TLS library, {self.tls.text}, past its end of "
                f"life ({ended.isoformat()}) and never updated: use a binding linked with "
                "the system's OpenSSL"
            )
        return found

    def status_line(self, today: date) -> str:
        """One line for the `status` reply."""
        words = [f"pjproject {self.pjproject}"]
        missing = self.missing()
        if missing:
            words.append(f"lacks {len(missing)} security fixes of {_releases(missing)}")
        words.append(
            "MESSAGE answered once stored" if self.deferred_responses else "200 before storing"
        )
        words.append(self._tls_words(today))
        return ", ".join(words)

    def _tls_words(self, today: date) -> str:
        if not self.tls.available:
            return "no TLS"
        ended = self.tls.end_of_life()
        notes = [
            *(["bundled"] if self.tls.bundled else []),
            *([f"upstream end of life {ended.isoformat()}"] if ended and ended <= today else []),
        ]
        return self.tls.text + (f" ({', '.join(notes)})" if notes else "")

    def diagnostics(self, today: date) -> dict[str, object]:
        """JSON-ready facts for a diagnostic sensor (Home Assistant) or a support request."""
        ended = self.tls.end_of_life()
        return {
            "pjproject": self.pjproject,
            "pjproject_newest_known": NEWEST_KNOWN,
            "deferred_message_responses": self.deferred_responses,
            "missing_security_fixes": [
                {"version": f.version, "ref": f.ref, "what": f.what, "part": f.part}
                for f in self.missing()
            ],
            "tls_library": self.tls.text or None,
            "tls_bundled": self.tls.bundled,
            "tls_end_of_life": ended.isoformat() if ended else None,
            "tls_supported_upstream": None if ended is None else ended > today,
        }


def _releases(fixes: Iterable[Fix]) -> str:
    return " and ".join(sorted({f.version for f in fixes}, key=version_key))


def log_capabilities(caps: Capabilities, today: date | None = None) -> None:
    """The start-up lines: what runs, and what an owner should know about it."""
    log.info(
        "%s",
        caps.summary(),
        extra=journal_fields(
            pjproject_version=caps.pjproject,
            pjsua2_deferred_responses=int(caps.deferred_responses),
            pjsua2_tls=caps.tls.text or "none",
            pjproject_missing_fixes=len(caps.missing()),
        ),
    )
    for warning in caps.warnings(today or date.today()):
        log.warning("%s", warning)
