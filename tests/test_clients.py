"""Client keys (arena/clients.py): the address rule, the keyed hash, the secret and its file.

Pure: no server, no browser (tests/test_client_browser.py drives the real thing). The few tests
of arena/ui/client.py here run it outside a server, where it must stay out of the way.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import ipaddress
import logging
import os
import pickle
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from arena import clients
from arena.clients import (
    MAX_FORWARDED_HOPS,
    Secret,
    client_address,
    client_key,
    connection_key,
    load_secret,
    parse_trusted_proxies,
    secret_path,
    unverified_key,
    uvicorn_may_have_rewritten,
)
from arena.config import Settings
from arena.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
KEY = b"k" * 32
SECRET_TEXT = "correct horse battery staple 42"
PROXIES = parse_trusted_proxies("10.0.0.0/8, 2001:db8:1::/48")


def ip(text):
    return ipaddress.ip_address(text)


# ----- the address rule --------------------------------------------------------------------------

ADDRESS_CASES = [
    # (case, socket peer, X-Forwarded-For, expected client)
    ("ipv4 peer", "198.51.100.9", None, "198.51.100.9"),
    ("ipv6 peer", "2001:db8:9::1", None, "2001:db8:9::1"),
    ("mapped ipv4 peer is unwrapped", "::ffff:198.51.100.9", None, "198.51.100.9"),
    ("ipv6 zone dropped", "fe80::1%eth0", None, "fe80::1"),
    ("loopback is an address too", "127.0.0.1", None, "127.0.0.1"),
    ("::1 too", "::1", None, "::1"),
    # an untrusted peer's header is ignored, whatever it says
    ("spoof from an untrusted peer", "198.51.100.9", "203.0.113.7", "198.51.100.9"),
    ("spoof from loopback (not trusted)", "127.0.0.1", "203.0.113.7", "127.0.0.1"),
    ("spoof a trusted proxy", "198.51.100.9", "10.0.0.5", "198.51.100.9"),
    ("spoof chain", "198.51.100.9", "203.0.113.7, 10.0.0.5", "198.51.100.9"),
    ("spoof from a mapped peer", "::ffff:198.51.100.9", "203.0.113.7", "198.51.100.9"),
    ("spoof over ipv6", "2001:db8:9::1", "203.0.113.7", "2001:db8:9::1"),
    # a trusted proxy: the right-most entry that is not a trusted proxy
    ("one proxy", "10.0.0.5", "203.0.113.7", "203.0.113.7"),
    ("client's own entry ignored", "10.0.0.5", "198.51.100.1, 203.0.113.7", "203.0.113.7"),
    ("two proxies", "10.0.0.5", "198.51.100.1, 203.0.113.7, 10.1.2.3", "203.0.113.7"),
    ("mapped trusted peer", "::ffff:10.0.0.5", "203.0.113.7", "203.0.113.7"),
    ("mapped entry", "10.0.0.5", "::ffff:203.0.113.7", "203.0.113.7"),
    ("ipv6 proxy, ipv6 client", "2001:db8:1::5", "2001:db8:2::7", "2001:db8:2::7"),
    ("ipv6 proxy, ipv4 client", "2001:db8:1::5", "203.0.113.7", "203.0.113.7"),
    ("every hop trusted: the left-most", "10.0.0.5", "10.9.9.9, 10.1.2.3", "10.9.9.9"),
    ("ipv4 with a port", "10.0.0.5", "203.0.113.7:4711", "203.0.113.7"),
    ("bracketed ipv6", "10.0.0.5", "[2001:db8:2::7]", "2001:db8:2::7"),
    ("bracketed ipv6 with a port", "10.0.0.5", "[2001:db8:2::7]:443", "2001:db8:2::7"),
    ("spaces", "10.0.0.5", "  203.0.113.7  ", "203.0.113.7"),
    ("no header from a proxy", "10.0.0.5", None, "10.0.0.5"),
    ("empty header from a proxy", "10.0.0.5", "", "10.0.0.5"),
    # garbage stops the walk at the last hop known for sure, never reads further left
    ("garbage only", "10.0.0.5", "not-an-address", "10.0.0.5"),
    ("unknown written by the proxy", "10.0.0.5", "203.0.113.7, unknown", "10.0.0.5"),
    ("garbage left of the client", "10.0.0.5", "garbage, 203.0.113.7", "203.0.113.7"),
    ("garbage after a trusted hop", "10.0.0.5", "198.51.100.1, bogus, 10.1.2.3", "10.1.2.3"),
    ("empty entry", "10.0.0.5", "198.51.100.1, ", "10.0.0.5"),
    ("hostname", "10.0.0.5", "evil.example", "10.0.0.5"),
    ("ipv4 in brackets", "10.0.0.5", "[203.0.113.7]", "10.0.0.5"),
    ("ipv6 with a bare port", "10.0.0.5", "2001:db8:2::7:443x", "10.0.0.5"),
    ("two ports", "10.0.0.5", "203.0.113.7:80:90", "10.0.0.5"),
    ("bad port", "10.0.0.5", "203.0.113.7:http", "10.0.0.5"),
    ("a network", "10.0.0.5", "203.0.113.0/24", "10.0.0.5"),
    ("obfuscated (RFC 7239)", "10.0.0.5", "_hidden", "10.0.0.5"),
    ("control characters", "10.0.0.5", "203.0.113.7\r\nX-Evil: 1", "10.0.0.5"),
    ("out of range", "10.0.0.5", "203.0.113.256", "10.0.0.5"),
]


@pytest.mark.parametrize(
    "peer, forwarded_for, expected",
    [c[1:] for c in ADDRESS_CASES],
    ids=[c[0] for c in ADDRESS_CASES],
)
def test_client_address(peer, forwarded_for, expected):
    assert client_address(peer, forwarded_for, PROXIES) == ip(expected)


@pytest.mark.parametrize(
    "peer", [None, "", "testclient", "unix:/tmp/s", "1.2.3", "[::1]", "::1:80:x"]
)
def test_a_peer_that_is_not_an_address_has_no_client(peer):
    assert client_address(peer, "203.0.113.7", PROXIES) is None
    assert connection_key(peer, "203.0.113.7", PROXIES, KEY) is None


def test_without_trusted_proxies_the_header_is_never_read():
    for peer in ("127.0.0.1", "10.0.0.5", "::1", "::ffff:127.0.0.1"):
        assert client_address(peer, "203.0.113.7", ()) == _unwrapped(peer)


def _unwrapped(peer):
    address = ip(peer)
    return getattr(address, "ipv4_mapped", None) or address


def test_a_long_trusted_chain_stops_at_the_hop_limit():
    hops = [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(MAX_FORWARDED_HOPS + 5)]
    header = ", ".join(["203.0.113.7", *hops])
    # hops[-1] is read first; after MAX_FORWARDED_HOPS trusted hops the walk ends there
    assert client_address("10.0.0.254", header, PROXIES) == ip(hops[-MAX_FORWARDED_HOPS])
    short = ", ".join(["203.0.113.7", *hops[: MAX_FORWARDED_HOPS - 1]])
    assert client_address("10.0.0.254", short, PROXIES) == ip("203.0.113.7")


def test_many_headers_join_in_order():
    # arena/ui/client.py joins repeated X-Forwarded-For headers with ", " in header order,
    # as uvicorn and RFC 9110 do: the proxy's own header comes last.
    joined = ", ".join(["198.51.100.1", "203.0.113.7"])
    assert client_address("10.0.0.5", joined, PROXIES) == ip("203.0.113.7")


# ----- trusted proxies and the settings ----------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", ()),
        ("  ", ()),
        ("10.0.0.0/8", ("10.0.0.0/8",)),
        ("10.0.0.0/8, 127.0.0.1", ("10.0.0.0/8", "127.0.0.1/32")),
        ("10.0.0.0/8,,192.168.0.0/16,", ("10.0.0.0/8", "192.168.0.0/16")),
        ("::1, 2001:db8::/32", ("::1/128", "2001:db8::/32")),
        ("::ffff:10.0.0.0/104", ("10.0.0.0/8",)),  # peers are compared unwrapped
        ("::ffff:127.0.0.2", ("127.0.0.2/32",)),
        ("0.0.0.0/0", ("0.0.0.0/0",)),
    ],
)
def test_parse_trusted_proxies(text, expected):
    assert parse_trusted_proxies(text) == tuple(ipaddress.ip_network(n) for n in expected)


@pytest.mark.parametrize(
    "text, entry",
    [
        ("10.0.0.0/33", "10.0.0.0/33"),
        ("10.0.0.1/8", "10.0.0.1/8"),  # host bits: was 10.0.0.0/8 meant, or 10.0.0.1?
        ("*", "*"),
        ("localhost", "localhost"),
        ("10.0.0.0/8; 192.168.0.0/16", "10.0.0.0/8; 192.168.0.0/16"),
        ("10.0.0.0/8, nope", "nope"),
    ],
)
def test_a_bad_trusted_proxy_is_one_line_naming_the_setting_and_the_entry(text, entry):
    with pytest.raises(ConfigError) as info:
        parse_trusted_proxies(text)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"Setting ARENA_TRUSTED_PROXIES={text!r} is invalid: expected ")
    assert repr(entry) in message
    with pytest.raises(ConfigError, match="ARENA_TRUSTED_PROXIES"):
        Settings.from_env({"ARENA_TRUSTED_PROXIES": text})
    with pytest.raises(ConfigError, match="ARENA_TRUSTED_PROXIES"):
        Settings(trusted_proxies=text)


def test_the_new_settings_from_the_environment_and_in_code():
    default = Settings()
    assert default.trusted_proxies == "" and default.secret == Secret("") and not default.secret
    s = Settings.from_env({"ARENA_TRUSTED_PROXIES": "10.0.0.0/8, ::1", "ARENA_SECRET": SECRET_TEXT})
    assert s.trusted_proxies == "10.0.0.0/8, ::1"
    assert isinstance(s.secret, Secret) and s.secret.reveal() == SECRET_TEXT.encode()
    assert Settings(secret=SECRET_TEXT).secret == s.secret  # text in code becomes a Secret
    assert Settings(secret=Secret(SECRET_TEXT)).secret == s.secret


@pytest.mark.parametrize("value", ["short", " " * 3, "x" * 15])
def test_a_short_secret_is_refused_without_showing_it(value):
    for make in (
        lambda: Settings.from_env({"ARENA_SECRET": value}),
        lambda: Settings(secret=value),
    ):
        with pytest.raises(ConfigError) as info:
            make()
        message = str(info.value)
        assert message == (
            "Setting ARENA_SECRET='<redacted>' is invalid: expected a text of at least 16 "
            "characters, or empty."
        )
        assert value.strip() == "" or value not in message


def test_settings_never_show_the_secret(caplog):
    s = Settings(secret=SECRET_TEXT, trusted_proxies="10.0.0.0/8")
    for text in (repr(s), str(s), f"{s}", f"{s!r}", repr(s.secret), str(s.secret), f"{s.secret}"):
        assert SECRET_TEXT not in text
    assert "secret" not in repr(s)  # field(repr=False)
    assert "trusted_proxies='10.0.0.0/8'" in repr(s)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("settings %s %r %s", s, s, s.secret)
    assert SECRET_TEXT not in caplog.text


def test_the_settings_table_shows_no_secret():
    from arena.config import describe

    rows = {name: (default, help_text) for name, default, help_text in describe()}
    assert rows["ARENA_SECRET"][0] == "" and rows["ARENA_TRUSTED_PROXIES"][0] == ""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
    out = subprocess.run(
        [sys.executable, "-m", "arena", "settings"],
        cwd=REPO,
        env={**env, "ARENA_SECRET": SECRET_TEXT},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "ARENA_SECRET" in out.stdout and "ARENA_TRUSTED_PROXIES" in out.stdout
    assert SECRET_TEXT not in out.stdout + out.stderr


# ----- the keyed hash ----------------------------------------------------------------------------


def test_client_key_is_a_keyed_hash_of_the_address():
    key = client_key(ip("203.0.113.7"), KEY)
    assert len(key) == 32 and int(key, 16) >= 0
    assert key == client_key("203.0.113.7", KEY) == client_key(ip("203.0.113.7"), Secret(KEY))
    assert key == client_key(ip("::ffff:203.0.113.7"), KEY)  # mapped = the IPv4 client
    assert key != client_key("203.0.113.8", KEY)
    assert key != client_key("203.0.113.7", b"another key of enough length")
    plain = hashlib.sha256(b"203.0.113.7").hexdigest()
    assert key != plain[:32]  # not a bare hash anyone can recompute without the key


@pytest.mark.parametrize(
    "a, b, same",
    [
        ("2001:db8:0:1::1", "2001:db8:0:1:ffff:ffff:ffff:ffff", True),  # one /64
        ("2001:db8:0:1::1", "2001:db8:0:1:8000::", True),
        ("2001:db8:0:1::1", "2001:db8:0:2::1", False),  # the next /64
        ("2001:db8::1", "2001:db9::1", False),
        ("fe80::1%eth0", "fe80::2%eth1", True),
        ("198.51.100.1", "198.51.100.2", False),  # IPv4 is per address
        ("::ffff:198.51.100.1", "198.51.100.1", True),
        ("::198.51.100.1", "198.51.100.1", False),  # IPv4-compatible is plain IPv6
    ],
)
def test_ipv6_clients_are_keyed_by_their_64(a, b, same):
    assert (client_key(a, KEY) == client_key(b, KEY)) is same


def test_an_empty_secret_makes_no_key():
    with pytest.raises(ConfigError):
        client_key("203.0.113.7", b"")
    with pytest.raises(ConfigError):
        client_key("203.0.113.7", Secret(""))


def test_the_unverified_key_is_nobodys_address():
    shared = unverified_key(KEY)
    assert len(shared) == 32 and shared == unverified_key(Secret(KEY))
    for address in ("0.0.0.0", "127.0.0.1", "::", "::1", "203.0.113.7"):
        assert client_key(address, KEY) != shared


# ----- uvicorn's own rewriting -------------------------------------------------------------------

REWRITE_HEADERS = [
    "203.0.113.7",
    "198.51.100.1, 203.0.113.7",
    "203.0.113.7, 127.0.0.1",
    "127.0.0.1, ::1",
    "203.0.113.7:4711",
    "[2001:db8::7]:443",
    "[2001:db8::7]",
    "garbage",
    "203.0.113.7, garbage",
    "::ffff:203.0.113.7",
    " 203.0.113.7 ,",
    ",",
]


def _uvicorn_client(peer: str, header: str, trust: str) -> str:
    """What uvicorn's own ProxyHeadersMiddleware makes of a connection: the peer it passes on."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    seen = {}

    async def app(scope, receive, send):
        seen["client"] = scope["client"]

    scope = {
        "type": "websocket",
        "client": (peer, 5555),
        "headers": [(b"x-forwarded-for", header.encode("latin-1"))],
        "scheme": "ws",
    }
    asyncio.run(ProxyHeadersMiddleware(app, trusted_hosts=trust)(scope, None, None))
    return seen["client"][0]


@pytest.mark.parametrize("trust", ["127.0.0.1,::1", "127.0.0.0/8, ::1", "*", ""])
@pytest.mark.parametrize("header", REWRITE_HEADERS)
def test_what_uvicorn_rewrote_is_recognised(header, trust):
    """Checked against uvicorn itself: a peer it rewrote is always flagged; a peer it left alone
    is flagged only when it equals the header's own pick (then a header could have put it there)."""
    for raw_peer in ("127.0.0.1", "::1", "198.51.100.9"):
        seen = _uvicorn_client(raw_peer, header, trust)
        flagged = uvicorn_may_have_rewritten(seen, header, trust)
        if seen != raw_peer:
            assert flagged, (raw_peer, seen)
        if trust == "":
            assert seen == raw_peer and not flagged


@pytest.mark.parametrize(
    "peer, header, trust, flagged",
    [
        ("203.0.113.7", "203.0.113.7", "127.0.0.1,::1", True),  # maybe a local spoof
        ("127.0.0.1", "203.0.113.7", "127.0.0.1,::1", False),  # left alone: the real peer
        ("198.51.100.9", "203.0.113.7", "127.0.0.1,::1", False),
        ("203.0.113.7", None, "127.0.0.1,::1", False),  # no header, nothing to rewrite from
        ("203.0.113.7", "203.0.113.7", "", False),  # FORWARDED_ALLOW_IPS="": uvicorn trusts nobody
        ("203.0.113.7", "203.0.113.7", None, False),
        ("garbage", "garbage", "127.0.0.1,::1", True),
        ("203.0.113.7", "203.0.113.7, 10.0.0.5", "127.0.0.1,10.0.0.0/8", True),
        ("198.51.100.1", "198.51.100.1, 203.0.113.7", "*", True),  # "*": the left-most
    ],
)
def test_uvicorn_may_have_rewritten(peer, header, trust, flagged):
    assert uvicorn_may_have_rewritten(peer, header, trust) is flagged


def test_a_possibly_rewritten_peer_gets_the_shared_key():
    trust = "127.0.0.1,::1"
    for spoof in ("203.0.113.7", "198.51.100.1", "garbage"):
        peer = _uvicorn_client("127.0.0.1", spoof, trust)  # a local client spoofing
        assert connection_key(peer, spoof, (), KEY, trust) == unverified_key(KEY)
    assert connection_key("127.0.0.1", "203.0.113.7", (), KEY, trust) == client_key(
        "127.0.0.1", KEY
    )
    assert connection_key("203.0.113.7", "203.0.113.7", (), KEY, "") == client_key(
        "203.0.113.7", KEY
    )
    assert connection_key("10.0.0.5", "203.0.113.7", PROXIES, KEY, trust) == client_key(
        "203.0.113.7", KEY
    )


# ----- the Secret --------------------------------------------------------------------------------


def test_a_secret_never_shows_itself():
    s = Secret(SECRET_TEXT)
    for text in (
        repr(s),
        str(s),
        f"{s}",
        f"{s!r}",
        f"{s:>40}",
        "{} {!r}".format(s, s),  # noqa: UP032
        repr([s]),
        repr({"k": s}),
    ):
        assert SECRET_TEXT not in text and "redacted" in text
    assert repr(Secret("")) == "Secret('')" and str(Secret("")) == ""
    assert s.reveal() == SECRET_TEXT.encode() and len(s) == len(SECRET_TEXT)
    assert Secret(SECRET_TEXT.encode()) == s and Secret(s) == s
    assert bool(s) and not Secret("")
    with pytest.raises(AttributeError):
        s._value = b"other"
    with pytest.raises(TypeError):
        Secret(42)


def test_secrets_compare_in_constant_time(monkeypatch):
    calls = []
    real = clients.hmac.compare_digest
    monkeypatch.setattr(clients.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    assert Secret(SECRET_TEXT) == Secret(SECRET_TEXT)
    assert Secret(SECRET_TEXT) != Secret(SECRET_TEXT + "!")
    assert calls == [1, 1]
    assert Secret(SECRET_TEXT) != SECRET_TEXT  # never equal to the plain text
    assert hash(Secret(SECRET_TEXT)) == hash(Secret(SECRET_TEXT))


def test_a_pickled_secret_is_withheld():
    """A worker's arguments (multiprocessing pickles them) never carry the key."""
    s = Secret(SECRET_TEXT)
    data = pickle.dumps(s)
    assert SECRET_TEXT.encode() not in data
    back = pickle.loads(data)
    assert back.withheld and back == s and bool(back) and "redacted" in repr(back)
    with pytest.raises(ConfigError, match="never pickled"):
        back.reveal()
    with pytest.raises(ConfigError):
        client_key("203.0.113.7", back)
    empty = pickle.loads(pickle.dumps(Secret("")))
    assert not empty and not empty.withheld
    settings = Settings(secret=SECRET_TEXT)
    data = pickle.dumps(settings)
    assert SECRET_TEXT.encode() not in data
    assert pickle.loads(data).secret.withheld
    assert copy.copy(s) is s and copy.deepcopy(s) is s
    assert copy.deepcopy(settings).secret.reveal() == SECRET_TEXT.encode()


def test_streamlit_cache_hashing_never_sees_the_secret(cache_hashes):
    """st.cache_resource hashes its arguments (Settings goes to arena.ui.common._resources):
    every byte string fed to its hashers is recorded; none holds the secret."""

    def cache_key(settings):
        return cache_hashes.cache_key(settings, 0.0)

    fed = cache_hashes.fed
    one = cache_key(Settings(secret=SECRET_TEXT))
    assert fed and not any(SECRET_TEXT.encode() in chunk for chunk in fed)
    assert one == cache_key(Settings(secret=SECRET_TEXT))
    assert one != cache_key(Settings(secret=SECRET_TEXT + "!"))  # another key, another entry


# ----- the secret file ---------------------------------------------------------------------------


def _settings(folder: Path, **kw) -> Settings:
    return Settings(models=str(folder / "models.yaml"), **kw)


def test_arena_secret_wins_and_no_file_is_made(tmp_path, caplog):
    s = load_secret(_settings(tmp_path, secret=SECRET_TEXT))
    assert s.reveal() == SECRET_TEXT.encode()
    assert not (tmp_path / ".arena-secret").exists() and not caplog.records


def test_the_secret_file_is_made_once_with_mode_0600_and_reused(tmp_path, caplog):
    old = os.umask(0)  # the mode must not depend on the umask
    try:
        with caplog.at_level(logging.WARNING, logger="arena.clients"):
            first = load_secret(_settings(tmp_path))
    finally:
        os.umask(old)
    path = tmp_path / ".arena-secret"
    assert secret_path(tmp_path / "models.yaml") == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert len(text.strip()) == 64 and int(text, 16) >= 0 and text.endswith("\n")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ARENA_SECRET is not set" in warnings[0].getMessage()
    assert "same value on every replica" in warnings[0].getMessage()
    assert text.strip() not in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="arena.clients"):
        again = load_secret(_settings(tmp_path))
    assert again == first and not caplog.records and path.read_text() == text
    # its text as ARENA_SECRET is the same key: how replicas on other machines share it
    assert client_key("203.0.113.7", load_secret(_settings(tmp_path, secret=text.strip()))) == (
        client_key("203.0.113.7", first)
    )


def test_a_secret_file_others_can_read_is_warned_about(tmp_path, caplog):
    path = tmp_path / ".arena-secret"
    path.write_text("a" * 64 + "\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="arena.clients"):
        assert load_secret(_settings(tmp_path)).reveal() == b"a" * 64
    assert "readable by other users" in caplog.text


@pytest.mark.parametrize("content", ["", "short\n", "\n\n"])
def test_a_broken_secret_file_is_one_line_saying_what_to_do(tmp_path, monkeypatch, content):
    monkeypatch.setattr(clients, "_SECRET_WAIT_S", 0.2)
    (tmp_path / ".arena-secret").write_text(content)
    with pytest.raises(ConfigError) as info:
        load_secret(_settings(tmp_path))
    message = str(info.value)
    assert "\n" not in message and "ARENA_SECRET" in message and ".arena-secret" in message
    assert "fewer than 16 characters" in message


def test_a_secret_file_being_written_is_waited_for(tmp_path):
    path = tmp_path / ".arena-secret"
    path.touch(mode=0o600)  # another replica created it (O_EXCL) and is writing it
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import time; time.sleep(0.3); open({str(path)!r}, 'w').write('b' * 64)",
        ]
    )
    try:
        assert load_secret(_settings(tmp_path)).reveal() == b"b" * 64
    finally:
        writer.wait(timeout=30)


def test_a_secret_file_that_cannot_be_made_or_read(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_secret(_settings(tmp_path / "missing-folder"))
    message = str(info.value)
    assert "\n" not in message and "cannot be created" in message and "ARENA_SECRET" in message
    (tmp_path / ".arena-secret").mkdir()
    with pytest.raises(ConfigError, match="cannot be read"):
        load_secret(_settings(tmp_path))


RACER = textwrap.dedent(
    """
    import logging, os, sys, time
    sys.path.insert(0, {repo!r})
    from arena.clients import client_key, load_secret
    from arena.config import Settings

    made = []
    class Count(logging.Handler):
        def emit(self, record):
            made.append(record.getMessage())
    logging.getLogger("arena.clients").addHandler(Count())
    go = {go!r}
    deadline = time.monotonic() + 30
    while not os.path.exists(go) and time.monotonic() < deadline:
        pass  # spin: every racer starts within microseconds of the others
    secret = load_secret(Settings(models={models!r}))
    print(client_key("203.0.113.7", secret), sum("ARENA_SECRET is not set" in m for m in made))
    """
)


@pytest.mark.parametrize("round_", range(3))
def test_replicas_starting_together_agree_on_one_secret(tmp_path, round_):
    models = tmp_path / "models.yaml"
    go = tmp_path / "go"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
    code = RACER.format(repo=str(REPO), go=str(go), models=str(models))
    racers = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    try:
        time.sleep(1.0)  # let them all import and spin
        go.touch()
        outs = [p.communicate(timeout=60)[0].split() for p in racers]
    finally:
        for p in racers:
            p.kill()
    assert all(p.returncode == 0 for p in racers), outs
    keys = {out[0] for out in outs}
    assert len(keys) == 1, outs  # one key for all of them
    assert sum(int(out[1]) for out in outs) == 1, outs  # made once, warned once
    assert keys == {client_key("203.0.113.7", load_secret(Settings(models=str(models))))}


# ----- arena/ui/client.py outside a server -------------------------------------------------------


def test_outside_a_server_there_is_no_client_key():
    from arena.ui import client

    assert client.client_key() is None  # no script run: nothing to look at
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(
        "import streamlit as st\n"
        "from arena.ui.client import client_key, disable_uvicorn_forwarding\n"
        "st.write(f'count={disable_uvicorn_forwarding()} key={client_key()}')\n"
    )
    at.run(timeout=30)
    assert not at.exception
    assert at.markdown[0].value == "count=0 key=None"


def test_switching_off_uvicorns_rewriting(monkeypatch):
    """The mechanism of disable_uvicorn_forwarding, on a real uvicorn middleware."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from arena.ui import client

    seen = {}

    async def app(scope, receive, send):
        seen["client"] = scope["client"]

    middleware = ProxyHeadersMiddleware(app, trusted_hosts="127.0.0.1,::1")
    scope = {
        "type": "websocket",
        "client": ("127.0.0.1", 5555),
        "headers": [(b"x-forwarded-for", b"203.0.113.7")],
    }
    asyncio.run(middleware(dict(scope), None, None))
    assert seen["client"][0] == "203.0.113.7"  # uvicorn's default: the header wins

    monkeypatch.setattr(client, "_running", lambda: True)
    monkeypatch.setattr(client, "_disabled", [])
    assert client.disable_uvicorn_forwarding() >= 1
    assert client.disable_uvicorn_forwarding() == client._disabled[0]  # once per process
    asyncio.run(middleware(dict(scope), None, None))
    assert seen["client"] == ("127.0.0.1", 5555)  # now only our rule reads the header
