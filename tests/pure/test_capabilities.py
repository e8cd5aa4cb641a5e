"""What the agent says about the pjproject it runs on: pure functions, table-driven."""

from __future__ import annotations

from datetime import date

import pytest

from agent.core.capabilities import (
    KNOWN_FIXES,
    PARTS,
    Capabilities,
    TlsLibrary,
    log_capabilities,
    missing_fixes,
    version_key,
)

TODAY = date(2026, 12, 1)
WHEEL = Capabilities("2.15.1", False, TlsLibrary("OpenSSL 1.0.2k-fips 26 Jan 2017", bundled=True))
BUILT = Capabilities("2.17", True, TlsLibrary("OpenSSL 3.0.19 27 Jan 2026"))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("2.15.1", (2, 15, 1)),
        ("2.17", (2, 17)),
        ("2.16-dev", (2, 16)),
        (" 2.18.0 ", (2, 18, 0)),
        ("x", ()),
    ],
)
def test_versions_compare_by_number(text, key):
    assert version_key(text) == key


@pytest.mark.parametrize(
    ("version", "releases"),
    [("2.15.1", {"2.16", "2.17"}), ("2.16", {"2.17"}), ("2.17", set()), ("2.18.1", set())],
)
def test_a_release_lacks_the_fixes_of_every_later_one(version, releases):
    assert {f.version for f in missing_fixes(version)} == releases


def test_only_parts_the_agent_runs_count_unless_asked_for_all():
    used = missing_fixes("2.15.1")
    everything = missing_fixes("2.15.1", used_only=False)
    assert all(PARTS[f.part] for f in used)
    assert {f.part for f in everything} - {f.part for f in used} == {"media", "ice"}
    assert len(everything) == len(KNOWN_FIXES)
    assert "CVE-2026-28799" in {f.ref for f in used}  # presence server: serve mode
    assert "pjproject@5311aee" in {f.ref for f in used}  # pjsip's resolver (agent.adapters.sip.dns)


@pytest.mark.parametrize(
    ("text", "series", "ended"),
    [
        ("OpenSSL 1.0.2k-fips 26 Jan 2017", "1.0.2", date(2019, 12, 31)),
        ("OpenSSL 1.1.1w 11 Sep 2023", "1.1.1", date(2023, 9, 11)),
        ("OpenSSL 3.0.19 27 Jan 2026", "3.0", date(2026, 9, 7)),
        ("OpenSSL 3.5.1 1 Jul 2025", "3.5", None),  # LTS, supported: not in the table
        ("GnuTLS 3.7.9", None, None),
        ("", None, None),
    ],
)
def test_openssl_series_and_their_end_of_life(text, series, ended):
    lib = TlsLibrary(text)
    assert (lib.series, lib.end_of_life(), lib.available) == (series, ended, bool(text))


def test_the_wheel_is_named_old_with_its_bundled_tls_library():
    warnings = WHEEL.warnings(TODAY)
    assert len(warnings) == 2
    assert warnings[0].startswith("pjproject 2.15.1 lacks 8 security fixes of 2.16 and 2.17")
    assert "CVE-2026-28799" in warnings[0] and "build 2.17" in warnings[0]
    assert "OpenSSL 1.0.2k-fips" in warnings[1] and "never updated" in warnings[1]
    assert WHEEL.summary().startswith("pjproject 2.15.1; deferred MESSAGE responses: no")
    line = WHEEL.status_line(TODAY)
    assert line == (
        "pjproject 2.15.1, lacks 8 security fixes of 2.16 and 2.17, 200 before storing, "
        "OpenSSL 1.0.2k-fips 26 Jan 2017 (bundled, upstream end of life 2019-12-31)"
    )


def test_a_current_build_with_the_systems_openssl_has_nothing_to_warn_about():
    assert BUILT.warnings(TODAY) == []  # the distribution patches its own OpenSSL
    assert "deferred MESSAGE responses: yes" in BUILT.summary()
    assert BUILT.status_line(TODAY) == (
        "pjproject 2.17, MESSAGE answered once stored, "
        "OpenSSL 3.0.19 27 Jan 2026 (upstream end of life 2026-09-07)"
    )


def test_diagnostics_are_plain_data_for_a_sensor():
    facts = WHEEL.diagnostics(TODAY)
    assert facts["pjproject"] == "2.15.1" and facts["deferred_message_responses"] is False
    assert facts["tls_bundled"] is True and facts["tls_supported_upstream"] is False
    assert {"version", "ref", "what", "part"} == set(facts["missing_security_fixes"][0])  # type: ignore[index]
    built = BUILT.diagnostics(date(2026, 1, 1))
    assert built["missing_security_fixes"] == [] and built["tls_supported_upstream"] is True
    none = Capabilities("2.17", True, TlsLibrary("")).diagnostics(TODAY)
    assert none["tls_library"] is None and none["tls_supported_upstream"] is None


# -- edges (scripts/mutation.py): the exact words owners read, the end-of-life day itself ----


def test_the_start_up_lines_word_for_word(caplog: pytest.LogCaptureFixture) -> None:
    assert WHEEL.summary() == (
        "pjproject 2.15.1; deferred MESSAGE responses: no (pjsua answers 200 before the agent "
        "sees a MESSAGE; 2.16+ can defer); TLS: OpenSSL 1.0.2k-fips 26 Jan 2017"
    )
    assert BUILT.summary() == (
        "pjproject 2.17; deferred MESSAGE responses: yes (MESSAGE answered after it is "
        "stored); TLS: OpenSSL 3.0.19 27 Jan 2026"
    )
    bare = Capabilities("2.17", True, TlsLibrary(""))
    assert bare.summary().endswith("; TLS: none")
    assert bare.status_line(TODAY) == "pjproject 2.17, MESSAGE answered once stored, no TLS"
    assert WHEEL.warnings(TODAY)[1] == (
        "the binding brings its own TLS library, OpenSSL 1.0.2k-fips 26 Jan 2017, past its "
        "end of life (2019-12-31) and never updated: use a binding linked with the system's "
        "OpenSSL"
    )
    assert WHEEL.warnings(TODAY)[0].endswith("; build 2.17 (README: pjsua2 on ARM)")
    with caplog.at_level("INFO", logger="agent.core.capabilities"):
        log_capabilities(WHEEL)  # today, from the system clock: long after 2019
    assert [r.getMessage() for r in caplog.records] == [WHEEL.summary(), *WHEEL.warnings(TODAY)]


@pytest.mark.parametrize(
    ("today", "supported", "note", "warned"),
    [
        (date(2026, 9, 6), True, False, False),
        (date(2026, 9, 7), False, True, True),  # the day it ends
        (date(2026, 9, 8), False, True, True),
    ],
)
def test_the_end_of_life_day_itself(today: date, supported: bool, note: bool, warned: bool) -> None:
    bundled = Capabilities("2.17", True, TlsLibrary("OpenSSL 3.0.19 27 Jan 2026", bundled=True))
    assert bundled.diagnostics(today)["tls_supported_upstream"] is supported
    assert bundled.diagnostics(today)["tls_end_of_life"] == "2026-09-07"
    assert ("upstream end of life 2026-09-07" in bundled.status_line(today)) is note
    assert bool(bundled.warnings(today)) is warned
    assert BUILT.warnings(today) == []  # the system's own OpenSSL: its distribution patches it


def test_diagnostics_word_for_word() -> None:
    assert BUILT.diagnostics(TODAY) == {
        "pjproject": "2.17",
        "pjproject_newest_known": "2.17",
        "deferred_message_responses": True,
        "missing_security_fixes": [],
        "tls_library": "OpenSSL 3.0.19 27 Jan 2026",
        "tls_bundled": False,
        "tls_end_of_life": "2026-09-07",
        "tls_supported_upstream": False,
    }
