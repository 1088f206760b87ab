"""The NUT protocol, line by line, without a network: words, quoting, framing, errors.

Expected replies are those of upsd 2.8 (probed with Debian's nut-server), except where
this server is read-only by design (write commands → ``ERR ACCESS-DENIED``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.nut.protocol import (
    MAX_WORDS,
    NETVER,
    Action,
    NutError,
    ProtocolError,
    Session,
    Variable,
    decode_line,
    list_block,
    quote,
    split_words,
)


class FakeDirectory:
    """Two UPSes: ``ups`` (fresh) and ``stale`` (bridge offline)."""

    def __init__(self, *, tls: bool = False) -> None:
        self.sessions: list[Session] = []
        self._tls = tls
        self.vars: dict[str, Variable] = {
            "ups.status": Variable("OB DISCHRG"),
            "input.voltage": Variable("229.5", number=True),
            "ups.mfr": Variable('Acme "quoted" \\ co'),
        }

    def ups_names(self) -> Sequence[str]:
        return ["ups", "stale"]

    def description(self, ups: str) -> str:
        return {"ups": "powerbridge rack-a", "stale": "powerbridge rack-b"}[ups]

    def variables(self, ups: str) -> Mapping[str, Variable] | None:
        self.description(ups)
        return self.vars if ups == "ups" else None

    def clients(self, ups: str) -> Sequence[str]:
        return [s.peer for s in self.sessions if s.logged_in == ups]

    def check_password(self, username: str, password: str) -> bool:
        return (username, password) == ("monuser", "secret")

    @property
    def tls_available(self) -> bool:
        return self._tls

    @property
    def version(self) -> str:
        return "powerbridge test"


def ask(line: str | bytes, session: Session | None = None, d: FakeDirectory | None = None) -> str:
    raw = line.encode() if isinstance(line, str) else line
    return (session or Session("192.0.2.7")).handle_line(raw, d or FakeDirectory()).text


# --------------------------------------------------------------------------- words


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("GET VAR ups ups.status", ["GET", "VAR", "ups", "ups.status"]),
        ("  GET\tVAR   ups  ", ["GET", "VAR", "ups"]),
        ('GET VAR "ups" "ups.status"', ["GET", "VAR", "ups", "ups.status"]),
        ('PASSWORD "two words"', ["PASSWORD", "two words"]),
        ('PASSWORD "with \\" quote"', ["PASSWORD", 'with " quote']),
        ("PASSWORD back\\\\slash", ["PASSWORD", "back\\slash"]),
        ('PASSWORD ""', ["PASSWORD", ""]),
        ('PASSWORD a"b c"d', ["PASSWORD", "ab cd"]),
        ("", []),
        ("   ", []),
    ],
)
def test_words_split_like_upsd(line: str, words: list[str]) -> None:
    assert split_words(line) == words


@pytest.mark.parametrize("line", ['GET VAR "ups', "PASSWORD x\\", "x " * (MAX_WORDS + 2)])
def test_bad_quoting_escaping_or_too_many_words_is_invalid(line: str) -> None:
    with pytest.raises(ProtocolError) as err:
        split_words(line)
    assert err.value.code is NutError.INVALID_ARGUMENT


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40))
def test_quote_round_trips_through_the_word_splitter(value: str) -> None:
    assert split_words(f"X {quote(value)}") == ["X", value]


def test_quote_escapes_quotes_and_backslashes() -> None:
    assert quote('a "b" \\c') == '"a \\"b\\" \\\\c"'


@given(st.binary(max_size=200))
def test_any_bytes_get_one_reply_and_never_an_exception(raw: bytes) -> None:
    reply = Session("x").handle_line(raw.replace(b"\n", b""), FakeDirectory())
    assert reply.text == "" or reply.text.endswith("\n")


@pytest.mark.parametrize("raw", [b"\x00\x01GET", b"GET VAR ups \xff", b"\x1b[2J"])
def test_binary_garbage_is_an_invalid_argument(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_line(raw)
    assert ask(raw) == "ERR INVALID-ARGUMENT\n"


def test_a_carriage_return_before_the_newline_is_dropped() -> None:
    assert ask(b"GET VAR ups ups.status\r") == 'VAR ups ups.status "OB DISCHRG"\n'


def test_an_empty_line_gets_no_reply() -> None:
    assert ask("") == ""


# --------------------------------------------------------------------------- simple commands


def test_ver_netver_protver_help() -> None:
    assert ask("VER") == "powerbridge test\n"
    assert ask("NETVER") == f"{NETVER}\n"
    assert ask("PROTVER") == f"{NETVER}\n"
    assert ask("HELP").startswith("Commands: HELP VER GET LIST")
    assert ask("VER x") == "ERR INVALID-ARGUMENT\n"


def test_commands_are_case_insensitive_names_are_not() -> None:
    assert ask("get var ups ups.status") == 'VAR ups ups.status "OB DISCHRG"\n'
    assert ask("GET VAR UPS ups.status") == "ERR UNKNOWN-UPS\n"


def test_unknown_command() -> None:
    assert ask("FROB") == "ERR UNKNOWN-COMMAND\n"


# --------------------------------------------------------------------------- GET


def test_get_var_quotes_the_value() -> None:
    assert ask("GET VAR ups ups.mfr") == 'VAR ups ups.mfr "Acme \\"quoted\\" \\\\ co"\n'


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("GET VAR ups nope.var", "ERR VAR-NOT-SUPPORTED\n"),
        ("GET VAR nope ups.status", "ERR UNKNOWN-UPS\n"),
        ("GET VAR stale ups.status", "ERR DATA-STALE\n"),
        ("GET VAR ups", "ERR INVALID-ARGUMENT\n"),
        ("GET", "ERR INVALID-ARGUMENT\n"),
        ("GET FOO ups", "ERR INVALID-ARGUMENT\n"),
        ("GET TYPE ups nope.var", "ERR VAR-NOT-SUPPORTED\n"),
        ("GET UPSDESC nope", "ERR UNKNOWN-UPS\n"),
        ("GET NUMLOGINS nope", "ERR UNKNOWN-UPS\n"),
        ("GET DESC nope ups.status", "ERR UNKNOWN-UPS\n"),
    ],
)
def test_get_errors(line: str, reply: str) -> None:
    assert ask(line) == reply


def test_get_upsdesc_desc_type_cmddesc() -> None:
    assert ask("GET UPSDESC ups") == 'UPSDESC ups "powerbridge rack-a"\n'
    assert ask("GET DESC ups ups.status") == 'DESC ups ups.status "UPS status"\n'
    assert ask("GET DESC ups x.y") == 'DESC ups x.y "Description unavailable"\n'
    assert ask("GET TYPE ups input.voltage") == "TYPE ups input.voltage NUMBER\n"
    assert ask("GET TYPE ups ups.status") == "TYPE ups ups.status STRING:64\n"
    assert ask("GET CMDDESC ups load.off") == 'CMDDESC ups load.off "Description unavailable"\n'


# --------------------------------------------------------------------------- LIST


def test_list_ups_framing() -> None:
    assert ask("LIST UPS") == (
        "BEGIN LIST UPS\n"
        'UPS ups "powerbridge rack-a"\n'
        'UPS stale "powerbridge rack-b"\n'
        "END LIST UPS\n"
    )


def test_list_var_sorted_and_quoted() -> None:
    assert ask("LIST VAR ups") == (
        "BEGIN LIST VAR ups\n"
        'VAR ups input.voltage "229.5"\n'
        'VAR ups ups.mfr "Acme \\"quoted\\" \\\\ co"\n'
        'VAR ups ups.status "OB DISCHRG"\n'
        "END LIST VAR ups\n"
    )


def test_read_only_server_lists_no_rw_and_no_cmd() -> None:
    assert ask("LIST RW ups") == "BEGIN LIST RW ups\nEND LIST RW ups\n"
    assert ask("LIST CMD ups") == "BEGIN LIST CMD ups\nEND LIST CMD ups\n"
    assert ask("LIST ENUM ups ups.status") == (
        "BEGIN LIST ENUM ups ups.status\nEND LIST ENUM ups ups.status\n"
    )
    assert ask("LIST RANGE ups ups.status") == (
        "BEGIN LIST RANGE ups ups.status\nEND LIST RANGE ups ups.status\n"
    )


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("LIST", "ERR INVALID-ARGUMENT\n"),
        ("LIST FOO", "ERR INVALID-ARGUMENT\n"),
        ("LIST VAR", "ERR INVALID-ARGUMENT\n"),
        ("LIST VAR nope", "ERR UNKNOWN-UPS\n"),
        ("LIST VAR stale", "ERR DATA-STALE\n"),
        ("LIST CMD nope", "ERR UNKNOWN-UPS\n"),
        ("LIST CLIENT nope", "ERR UNKNOWN-UPS\n"),
        ("LIST ENUM ups", "ERR INVALID-ARGUMENT\n"),
        ("LIST ENUM ups nope.var", "ERR VAR-NOT-SUPPORTED\n"),
    ],
)
def test_list_errors(line: str, reply: str) -> None:
    assert ask(line) == reply


def test_list_block_is_framed_even_when_empty() -> None:
    assert list_block("CLIENT ups", []) == "BEGIN LIST CLIENT ups\nEND LIST CLIENT ups\n"


# --------------------------------------------------------------------------- login


def test_login_sequence_clients_and_numlogins() -> None:
    d = FakeDirectory()
    s = Session("192.0.2.7")
    d.sessions.append(s)
    assert ask("LOGIN ups", s, d) == "ERR USERNAME-REQUIRED\n"
    assert ask("USERNAME monuser", s, d) == "OK\n"
    assert ask("USERNAME other", s, d) == "ERR ALREADY-SET-USERNAME\n"
    assert ask("LOGIN ups", s, d) == "ERR PASSWORD-REQUIRED\n"
    assert ask("PASSWORD secret", s, d) == "OK\n"
    assert ask("PASSWORD again", s, d) == "ERR ALREADY-SET-PASSWORD\n"
    assert ask("LOGIN nope", s, d) == "ERR UNKNOWN-UPS\n"
    assert ask("GET NUMLOGINS ups", s, d) == "NUMLOGINS ups 0\n"
    assert ask("LOGIN ups", s, d) == "OK\n"
    assert ask("LOGIN ups", s, d) == "ERR ALREADY-LOGGED-IN\n"
    assert ask("GET NUMLOGINS ups", s, d) == "NUMLOGINS ups 1\n"
    assert ask("LIST CLIENT ups", s, d) == (
        "BEGIN LIST CLIENT ups\nCLIENT ups 192.0.2.7\nEND LIST CLIENT ups\n"
    )


def test_wrong_password_is_access_denied() -> None:
    s = Session("x")
    ask("USERNAME monuser", s)
    ask("PASSWORD wrong", s)
    assert ask("LOGIN ups", s) == "ERR ACCESS-DENIED\n"
    assert s.logged_in is None


@pytest.mark.parametrize(
    "line",
    ["SET VAR ups ups.status OL", "INSTCMD ups load.off", "FSD ups", "PRIMARY ups", "MASTER ups"],
)
def test_write_commands_are_refused(line: str) -> None:
    assert ask(line) == "ERR USERNAME-REQUIRED\n"
    s = Session("x")
    ask("USERNAME monuser", s)
    ask("PASSWORD secret", s)
    assert ask("LOGIN ups", s) == "OK\n"
    assert ask(line, s) == "ERR ACCESS-DENIED\n"


def test_logout_closes() -> None:
    reply = Session("x").handle_line(b"LOGOUT", FakeDirectory())
    assert (reply.text, reply.action) == ("OK Goodbye\n", Action.CLOSE)


def test_starttls_without_certificate_is_not_configured() -> None:
    assert ask("STARTTLS") == "ERR FEATURE-NOT-CONFIGURED\n"


def test_starttls_with_certificate_then_already_in_tls() -> None:
    d, s = FakeDirectory(tls=True), Session("x")
    reply = s.handle_line(b"STARTTLS", d)
    assert (reply.text, reply.action) == ("OK STARTTLS\n", Action.STARTTLS)
    assert ask("STARTTLS", s, d) == "ERR ALREADY-SSL-MODE\n"
