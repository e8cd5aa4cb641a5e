"""The Kamailio configuration of the lab: registrar, authenticating proxy, presence server.

Kept apart from the process handling in ``kamailio.py`` because it is mostly Kamailio script.
Placeholders are ``@NAME@`` (Kamailio's own syntax uses ``$``, ``{`` and ``%``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

# Credentials go into the script as string literals: keep them to characters that need no
# quoting in Kamailio's config language.
_SAFE = re.compile(r"[A-Za-z0-9._~+-]+")

# db_text table headers (column definitions) and versions, as in Kamailio 5.6's
# utils/kamctl/dbtext/kamailio/ (Debian: /usr/share/kamailio/dbtext/kamailio/). The presence
# modules check the versions at startup. Every column but id is made nullable below: with the
# stock headers the presence module's own rows fail db_text's NOT NULL check (it leaves
# active_watchers.flags unset), and a table that fails to load stops Kamailio at the next start.
DBTEXT_TABLES: dict[str, tuple[int, str]] = {
    "presentity": (
        5,
        "id(int,auto) username(string) domain(string) event(string) etag(string) expires(int)"
        " received_time(int) body(string) sender(string) priority(int) ruid(string,null)",
    ),
    "active_watchers": (
        12,
        "id(int,auto) presentity_uri(string) watcher_username(string) watcher_domain(string)"
        " to_user(string) to_domain(string) event(string) event_id(string,null)"
        " to_tag(string) from_tag(string) callid(string) local_cseq(int) remote_cseq(int)"
        " contact(string) record_route(string,null) expires(int) status(int)"
        " reason(string,null) version(int) socket_info(string) local_contact(string)"
        " from_user(string) from_domain(string) updated(int) updated_winfo(int) flags(int)"
        " user_agent(string,null)",
    ),
    "watchers": (
        3,
        "id(int,auto) presentity_uri(string) watcher_username(string) watcher_domain(string)"
        " event(string) status(int) reason(string,null) inserted_time(int)",
    ),
    "xcap": (
        4,
        "id(int,auto) username(string) domain(string) doc(string) doc_type(int) etag(string)"
        " source(int) doc_uri(string) port(int)",
    ),
}


def check_credential(kind: str, value: str) -> None:
    if not _SAFE.fullmatch(value):
        raise ValueError(f"{kind} {value!r}: use only letters, digits and . _ ~ + -")


def write_dbtext(dbdir: Path) -> None:
    """Create the db_text tables the presence modules need, unless they already exist.

    Existing files are kept so that a restart finds the subscriptions that Kamailio flushed.
    """
    dbdir.mkdir(parents=True, exist_ok=True)
    for name, (_version, header) in DBTEXT_TABLES.items():
        table = dbdir / name
        if not table.exists():
            # Trailing space + newline: the way Kamailio's own files end the header line.
            table.write_text(_nullable(header) + " \n")
    version = dbdir / "version"
    if not version.exists():
        rows = [f"{name}:{ver}" for name, (ver, _h) in DBTEXT_TABLES.items()]
        version.write_text(
            "id(int,auto) table_name(string) table_version(int) \n"
            + "".join(f"0:{row}\n" for row in rows)
        )


def _nullable(header: str) -> str:
    columns = []
    for column in header.split():
        if "auto" not in column and ",null" not in column:
            column = column[:-1] + ",null)"
        columns.append(column)
    return " ".join(columns)


def render(
    *,
    port: int,
    domain: str,
    users: Mapping[str, str],
    dbdir: Path,
    secret: str,
    host: str = "127.0.0.1",
    tls: tuple[int, Path] | None = None,
    also_listen: tuple[str, ...] = (),
    modules: str = "",
    before_save: str = "",
) -> str:
    """The complete kamailio.cfg text; `tls` = (port, tls.cfg path) adds a TLS listener."""
    check_credential("domain", domain)
    for user, password in users.items():
        check_credential("user", user)
        check_credential("password", password)
    # Filled in once at startup: htable has no static initial values, and a db_text-backed
    # htable would be one more file format to get right.
    user_lines = "\n".join(
        f'\t$sht(users=>{user}) = "{password}";' for user, password in sorted(users.items())
    )
    tls_lines = ""
    if tls is not None:
        tls_lines = (
            f"enable_tls=yes\nlisten=tls:{host}:{tls[0]}\n"
            f'loadmodule "tls.so"\nmodparam("tls", "config", "{tls[1]}")\n'
        )
    for address in also_listen:
        bracketed = f"[{address}]" if ":" in address else address
        tls_lines += f"listen=udp:{bracketed}:{port}\nlisten=tcp:{bracketed}:{port}\n"
    return (
        _TEMPLATE.replace("@PORT@", str(port))
        .replace("@MODULES@\n", modules)
        .replace("@BEFORE_SAVE@\n", before_save)
        .replace("@HOST@", host)
        .replace("@TLS@\n", tls_lines)
        .replace("@DOMAIN@", domain)
        .replace("@DBURL@", f"text://{dbdir}")
        .replace("@SECRET@", secret)
        .replace("@USERS@", user_lines)
    )


_TEMPLATE = r"""#!KAMAILIO
# Generated by lab/kamailio_cfg.py for one test run; edits are overwritten.

####### Global parameters #########
debug=2
log_stderror=yes
# The lab must not touch anything outside its workdir: no syslog, no DNS, no guessed aliases.
log_facility=LOG_LOCAL0
dns=no
rev_dns=no
use_dns_cache=no
auto_aliases=no
children=2
tcp_children=2
listen=udp:@HOST@:@PORT@
listen=tcp:@HOST@:@PORT@
@TLS@
# The domain does not resolve: it only has to be "myself" (clients use the outbound proxy).
alias="@DOMAIN@"

####### Modules #########
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "htable.so"
loadmodule "db_text.so"
loadmodule "presence.so"
loadmodule "presence_xml.so"
@MODULES@

# A MESSAGE to a registered but dead contact fails in 5 s rather than 30 s: tests wait for it.
modparam("tm", "fr_timer", 5000)

modparam("usrloc", "db_mode", 0)
# Tests may ask for short registrations (e.g. to see a refresh); the default floor is 60 s.
modparam("registrar", "min_expires", 1)

# A fixed secret keeps the nonces valid across restart(): clients need not re-authenticate
# more than they would with a real server.
modparam("auth", "secret", "@SECRET@")

modparam("htable", "htable", "users=>size=8;")

# By default db_text reads an empty string back as NULL, and then refuses the row.
modparam("db_text", "emptystring", 1)
# PIDF documents are stored in one line of the presentity table.
modparam("db_text", "file_buffer_size", 65536)

modparam("presence", "db_url", "@DBURL@")
modparam("presence_xml", "db_url", "@DBURL@")
# Without permission rules (no XCAP server here) watchers would stay pending and get NOTIFYs
# without a body.
modparam("presence_xml", "force_active", 1)
# 1 = read rules from the xcap table directly: no xcap_client module, no HTTP.
modparam("presence_xml", "integrated_xcap_server", 1)
# One INFO line per NOTIFY would flood the log (and slow Kamailio) in load tests: debug only.
modparam("presence", "local_log_level", 3)

####### Routing logic ########

event_route[htable:mod-init] {
@USERS@
}

request_route {
	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	if (!sanity_check()) {
		xlog("L_WARN", "malformed $rm from $si:$sp dropped\n");
		exit;
	}

	if (is_method("CANCEL")) {
		if (t_check_trans()) {
			t_relay();
		}
		exit;
	}
	# Retransmissions of requests already being handled are absorbed by tm.
	if (!is_method("ACK")) {
		if (t_precheck_trans()) {
			t_check_trans();
			exit;
		}
		t_check_trans();
	}

	route(WITHINDLG);

	# Keepalive / health check, also what the lab waits for at startup.
	if (is_method("OPTIONS") && uri==myself && $rU==$null) {
		sl_send_reply("200", "Keepalive");
		exit;
	}

	if (is_method("REGISTER")) {
		route(REGISTRAR);
		exit;
	}

	if (is_method("ACK")) {
		# A stray ACK for a transaction we do not know.
		exit;
	}

	route(AUTH);

	if (is_method("PUBLISH|SUBSCRIBE")) {
		route(PRESENCE);
		exit;
	}

	if ($rU==$null) {
		sl_send_reply("484", "Address Incomplete");
		exit;
	}
	if (!uri==myself) {
		sl_send_reply("403", "Relaying Forbidden");
		exit;
	}
	route(LOCATION);
}

route[WITHINDLG] {
	if (!has_totag()) {
		return;
	}
	# Our own Route header (the client's outbound proxy, or our Record-Route) is consumed here.
	if (loose_route()) {
		if (!(is_method("SUBSCRIBE") && uri==myself)) {
			route(RELAY);
			exit;
		}
	}
	# Refreshes and un-SUBSCRIBEs of dialogs whose other end is our presence server.
	if (is_method("SUBSCRIBE") && uri==myself) {
		route(PRESENCE);
		exit;
	}
	if (is_method("ACK")) {
		if (t_check_trans()) {
			route(RELAY);
		}
		exit;
	}
	sl_send_reply("404", "Not here");
	exit;
}

# Looks up the password of the auth user. An unknown or missing user is never checked
# against any password (an unset $var reads as 0, which must not become a valid password):
# it is just challenged again.
route[CREDENTIALS] {
	$var(known) = 0;
	$var(rc) = -5;
	$var(pw) = "";
	if ($au != $null && $sht(users=>$au) != $null) {
		$var(known) = 1;
		$var(pw) = $sht(users=>$au);
	}
}

route[REGISTRAR] {
	route(CREDENTIALS);
	if ($var(known) == 1) {
		pv_www_authenticate("@DOMAIN@", "$var(pw)", "0");
		$var(rc) = $rc;
	}
	if ($var(rc) < 0) {
		# -5 (no credentials yet) is the normal first round: not worth a log line.
		if ($var(rc) != -5) {
			xlog("L_INFO", "REGISTER $tu from $si:$sp: auth user '$au' rejected ($var(rc))\n");
		}
		if ($var(rc) == -4 || $var(rc) == -6) {
			# nonce expired or reused: the same credentials work with a fresh nonce
			www_challenge("@DOMAIN@", "17");
		} else {
			www_challenge("@DOMAIN@", "1");
		}
		exit;
	}
	# An account may only register its own address.
	if ($au != $tU || !(to_uri==myself)) {
		xlog("L_INFO", "REGISTER $tu by auth user '$au' forbidden\n");
		sl_send_reply("403", "Forbidden: auth user does not own To");
		exit;
	}
	consume_credentials();
@BEFORE_SAVE@
	if (!save("location")) {
		sl_reply_error();
	}
	exit;
}

# Every out-of-dialog request from a local user is authenticated, and the authenticated user
# must be the From user: nobody can send in the name of someone else through this proxy.
route[AUTH] {
	if (!(from_uri==myself)) {
		# No peering with anyone: a foreign From can only be forged.
		sl_send_reply("403", "Forbidden: From domain is not served here");
		exit;
	}
	route(CREDENTIALS);
	if ($var(known) == 1) {
		pv_proxy_authenticate("@DOMAIN@", "$var(pw)", "0");
		$var(rc) = $rc;
	}
	if ($var(rc) < 0) {
		if ($var(rc) != -5) {
			xlog("L_INFO", "$rm from $fu at $si:$sp: auth user '$au' rejected ($var(rc))\n");
		}
		if ($var(rc) == -4 || $var(rc) == -6) {
			proxy_challenge("@DOMAIN@", "17");
		} else {
			proxy_challenge("@DOMAIN@", "1");
		}
		exit;
	}
	if ($au != $fU) {
		xlog("L_INFO", "$rm: auth user '$au' may not send as From $fu\n");
		sl_send_reply("403", "Forbidden: From does not match the authenticated user");
		exit;
	}
	consume_credentials();
	# Only we use our Route header; never pass it on.
	remove_hf("Route");
}

route[PRESENCE] {
	if (!(uri==myself)) {
		sl_send_reply("403", "Relaying Forbidden");
		exit;
	}
	# A user publishes only their own state.
	if (is_method("PUBLISH") && $rU != $fU) {
		sl_send_reply("403", "Forbidden: PUBLISH for another user");
		exit;
	}
	if (!t_newtran()) {
		sl_reply_error();
		exit;
	}
	if (is_method("PUBLISH")) {
		handle_publish();
	} else {
		handle_subscribe();
	}
	t_release();
	exit;
}

route[LOCATION] {
	$var(rc) = lookup("location");
	switch ($var(rc)) {
		case -1:
		case -3:
			sl_send_reply("404", "Not Found");
			exit;
		case -2:
			sl_send_reply("405", "Method Not Allowed");
			exit;
	}
	route(RELAY);
	exit;
}

route[RELAY] {
	if (!t_relay()) {
		sl_reply_error();
	}
	exit;
}
"""
