"""Who is on the other end of a connection: a client key that survives page reloads.

Every reload is a new Streamlit session, so per-session limits stop nobody; the client's network
address does survive reloads. It is never stored: only a keyed hash of it is (`client_key`,
HMAC-SHA256 under a secret that is never in the database, so the database alone reveals no
address). IPv6 clients are keyed by their /64, the block one subscriber usually holds.

The address is the socket peer. `X-Forwarded-For` is read only when the peer is a trusted proxy
(ARENA_TRUSTED_PROXIES), and then the right-most entry that is not a trusted proxy is the client:
every proxy appends the address it saw, so entries further left are whatever the client sent.

No Streamlit here (arena/ui/client.py reads the peer and the headers of the current session).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from arena.errors import ConfigError

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SECRET_FILE = ".arena-secret"  # beside models.yaml
SECRET_MIN_CHARS = 16
KEY_HEX_CHARS = 32  # 128 bits of the HMAC-SHA256: plenty for telling clients apart
IPV6_PREFIX = 64
MAX_FORWARDED_HOPS = 32  # a chain of trusted proxies longer than this is not a real one
_SECRET_WAIT_S = 2.0  # how long a replica waits for another one to finish writing the file
_KEY_LABEL = b"vlm-arena client key v1|"
_JUDGE_LABEL = b"vlm-arena judge v1|"  # a dataset's voter pseudonyms (arena.store.dataset)
_FINGERPRINT_LABEL = b"vlm-arena secret fingerprint v1"


# ----- the secret --------------------------------------------------------------------------------


class Secret:
    """Key material that never shows itself: repr and str are redacted, equality is constant-time.

    Pickling (a worker process's arguments) and Streamlit's cache hashing (which hashes an
    object's `__reduce__`) see only a one-way fingerprint: a Secret unpickled elsewhere is
    *withheld*, it compares and hashes like the original but `reveal()` refuses.
    """

    __slots__ = ("_value", "_fingerprint")

    def __init__(self, value: str | bytes | Secret = b"") -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"a Secret holds text or bytes, not {type(value).__name__}")
        object.__setattr__(self, "_value", bytes(value))
        object.__setattr__(self, "_fingerprint", None)

    def reveal(self) -> bytes:
        """The key itself, for hmac.new() and nothing else."""
        if self._value is None:
            raise ConfigError(
                "The client-key secret is not available in this process (it is never pickled); "
                "load it with arena.clients.load_secret in the process that needs it."
            )
        return self._value

    @property
    def withheld(self) -> bool:
        return self._value is None

    def fingerprint(self) -> str:
        """A one-way digest, safe to compare and to hash, that says nothing about the key."""
        if self._fingerprint is None:
            digest = hmac.new(self._value, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:32]
            object.__setattr__(self, "_fingerprint", digest)
        return self._fingerprint

    def __len__(self) -> int:
        return len(self.reveal())

    def __bool__(self) -> bool:
        return self._value is None or bool(self._value)

    def __repr__(self) -> str:
        return "Secret('<redacted>')" if self else "Secret('')"

    def __str__(self) -> str:
        return "<redacted>" if self else ""

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        if self._value is not None and other._value is not None:
            return hmac.compare_digest(self._value, other._value)
        return hmac.compare_digest(self.fingerprint(), other.fingerprint())

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if self._value == b"":
            return (Secret, (b"",))
        return (_Withheld, (self.fingerprint(),))

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict) -> Secret:  # dataclasses.asdict deep-copies field values
        return self

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a Secret cannot be changed")


class _Withheld(Secret):
    """What an unpickled Secret is: its fingerprint only. (A class, not a function, as the
    callable of `__reduce__`: Streamlit's hasher cannot hash a function.)"""

    __slots__ = ()

    def __init__(self, fingerprint: str) -> None:
        object.__setattr__(self, "_value", None)
        object.__setattr__(self, "_fingerprint", str(fingerprint))


def secret_path(models: str | os.PathLike) -> Path:
    """Where the app keeps its own secret: `.arena-secret` in the folder of models.yaml."""
    return Path(os.path.abspath(os.fspath(models))).parent / SECRET_FILE


def load_secret(settings: Any) -> Secret:
    """The key of the client hash: ARENA_SECRET if set, else the secret file beside models.yaml.

    The file is created once (O_CREAT|O_EXCL, mode 0600, a random 64-hex-digit text); a replica
    starting at the same moment finds it and reads the same key. Creating it logs a warning:
    replicas on other machines need ARENA_SECRET, the same on all of them. A file that cannot be
    read or created is a ConfigError saying what to do.
    """
    configured = getattr(settings, "secret", None)
    if configured:
        return configured if isinstance(configured, Secret) else Secret(configured)
    path = secret_path(settings.models)
    text = _read_secret_file(path)
    if text is None:
        text = _create_secret_file(path)
    return Secret(text)


def _secret_error(path: Path, problem: str) -> ConfigError:
    return ConfigError(
        f"Secret file {path} {problem}: set ARENA_SECRET to a random text of at least "
        f"{SECRET_MIN_CHARS} characters (the same on every replica), or fix the file "
        f"(delete it and a new one is made)."
    )


def _read_secret_file(path: Path) -> str | None:
    """The file's text, or None when there is no file. Waits briefly for a file another process
    has just created (O_EXCL) and not yet written."""
    deadline = time.monotonic() + _SECRET_WAIT_S
    while True:
        try:
            with open(path, encoding="utf-8") as f:
                mode = os.fstat(f.fileno()).st_mode
                text = f.read().strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise _secret_error(path, f"cannot be read ({_reason(exc)})") from None
        if len(text) >= SECRET_MIN_CHARS:
            if mode & 0o077:
                logger.warning("Secret file %s is readable by other users; chmod 600 it.", path)
            return text
        if time.monotonic() > deadline:
            raise _secret_error(path, f"holds fewer than {SECRET_MIN_CHARS} characters")
        time.sleep(0.05)


def _create_secret_file(path: Path) -> str:
    text = secrets.token_hex(32)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:  # another replica made it a moment ago: use theirs
        existing = _read_secret_file(path)
        if existing is None:
            raise _secret_error(path, "appeared and vanished while starting") from None
        return existing
    except OSError as exc:
        raise _secret_error(path, f"cannot be created ({_reason(exc)})") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (text + "\n").encode("ascii"))
        os.fsync(fd)
    except OSError as exc:
        raise _secret_error(path, f"cannot be written ({_reason(exc)})") from None
    finally:
        os.close(fd)
    logger.warning(
        "ARENA_SECRET is not set: created %s (mode 0600) with a new random key for client keys. "
        "Replicas must share one key: set ARENA_SECRET to the same value on every replica.",
        path,
    )
    return text


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


# ----- addresses ---------------------------------------------------------------------------------


def parse_trusted_proxies(
    text: str | None, name: str = "ARENA_TRUSTED_PROXIES"
) -> tuple[IPNetwork, ...]:
    """'10.0.0.0/8, 127.0.0.1, 2001:db8::/32' as networks (a bare address is a /32 or /128).

    An IPv4-mapped IPv6 block (::ffff:10.0.0.0/104) means its IPv4 block, since peers are
    compared unwrapped. A bad entry is one ConfigError line naming the setting and the entry.
    """
    networks: list[IPNetwork] = []
    for entry in (text or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=True)
        except ValueError as exc:
            raise ConfigError(
                f"Setting {name}={text!r} is invalid: expected a comma-separated list of networks "
                f"such as 10.0.0.0/8, 127.0.0.1 or 2001:db8::/32 ({entry!r}: {exc})."
            ) from None
        mapped = network.network_address.ipv4_mapped if network.version == 6 else None
        if mapped is not None and network.prefixlen >= 96:
            network = ipaddress.IPv4Network(f"{mapped}/{network.prefixlen - 96}")
        networks.append(network)
    return tuple(networks)


def parse_address(text: str | None) -> IPAddress | None:
    """A bare address as the socket reports it, ::ffff:a.b.c.d unwrapped; None if it is not one."""
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return _unwrap(address)


def _unwrap(address: IPAddress) -> IPAddress:
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id:  # fe80::1%eth0: the zone is local detail, not part of the address
            return ipaddress.IPv6Address(int(address))
    return address


def _parse_hop(entry: str) -> IPAddress | None:
    """One X-Forwarded-For entry: 1.2.3.4, 1.2.3.4:80, 2001:db8::1, [2001:db8::1], [2001:db8::1]:443."""
    entry = entry.strip()
    if entry.startswith("["):
        end = entry.find("]")
        rest = entry[end + 1 :] if end > 0 else "x"
        if rest and not (rest[0] == ":" and rest[1:].isdigit()):
            return None
        address = parse_address(entry[1:end])
        return address if address is not None and address.version == 6 else None
    if entry.count(":") == 1:  # IPv4 with a port
        host, port = entry.split(":")
        address = parse_address(host) if port.isdigit() else None
        return address if address is not None and address.version == 4 else None
    return parse_address(entry)


def _trusted(address: IPAddress, trusted: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in trusted)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[IPNetwork, ...]
) -> IPAddress | None:
    """The client of a connection from `peer` (the socket's address) carrying `forwarded_for`
    (the X-Forwarded-For values, comma-joined in header order).

    From an untrusted peer the header is ignored. From a trusted proxy, the entries are read from
    the right, through trusted proxies, to the first one that is not: that is the client. An entry
    that is not an address stops the walk at the last hop known for sure (the trusted proxy that
    wrote it), so nothing left of it, which the client may have written, is ever used. If every
    hop is trusted, the left-most is the client. None when the peer is not an address.
    """
    address = parse_address(peer)
    if address is None or not forwarded_for or not _trusted(address, trusted):
        return address
    for entry in list(reversed(forwarded_for.split(",")))[:MAX_FORWARDED_HOPS]:
        hop = _parse_hop(entry)
        if hop is None:
            return address
        if not _trusted(hop, trusted):
            return hop
        address = hop
    return address


def canonical(address: IPAddress | str) -> str:
    """The text that is hashed: the IPv4 address, or the IPv6 address's /64."""
    if isinstance(address, str):
        parsed = parse_address(address)
        if parsed is None:
            raise ValueError(f"not an IP address: {address!r}")
        address = parsed
    address = _unwrap(address)
    if address.version == 4:
        return f"ipv4 {address}"
    network = ipaddress.IPv6Network((int(address), IPV6_PREFIX), strict=False)
    return f"ipv6 {network}"


def _key(text: str, secret: Secret | bytes, label: bytes = _KEY_LABEL) -> str:
    key = secret.reveal() if isinstance(secret, Secret) else bytes(secret)
    if not key:
        raise ConfigError("The client-key secret is empty; load it with arena.clients.load_secret.")
    digest = hmac.new(key, label + text.encode("utf-8"), hashlib.sha256).hexdigest()
    return digest[:KEY_HEX_CHARS]


def judge_key(voter_id: str, secret: Secret | bytes) -> str:
    """A voter's pseudonym in an exported dataset: HMAC-SHA256 of the voter id under the arena's
    secret, 32 hex digits. Its own label, so it never equals a client key of the same text; the
    same voter gets the same pseudonym in every export of one arena, and without the secret it
    says nothing about the voter id (an email, a session id)."""
    return _key(voter_id, secret, _JUDGE_LABEL)


def client_key(address: IPAddress | str, secret: Secret | bytes) -> str:
    """HMAC-SHA256 of the canonical address under the secret, 32 hex digits. The same client
    (every address of one IPv6 /64) always gets the same key; without the secret the key says
    nothing about the address."""
    return _key(canonical(address), secret)


def unverified_key(secret: Secret | bytes) -> str:
    """The one key shared by every connection whose peer address cannot be trusted (see
    `connection_key`): spoofing a header buys no bucket of its own."""
    return _key("unverified", secret)


# ----- uvicorn's own X-Forwarded-For rewriting ---------------------------------------------------
#
# Streamlit 1.67 serves through uvicorn, whose ProxyHeadersMiddleware (on by default) replaces the
# peer with an X-Forwarded-For entry when the real peer is in FORWARDED_ALLOW_IPS (default
# "127.0.0.1,::1"). arena/ui/client.py switches it off; until it has, a session's peer may already
# be an address taken from the header. The functions below mirror uvicorn 0.54's rule
# (uvicorn/middleware/proxy_headers.py) to recognise that case.

UVICORN_DEFAULT_TRUST = "127.0.0.1,::1"


def _uvicorn_host(value: str) -> str:
    """uvicorn's _parse_host_port, the host part."""
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return value
        rest = value[end + 1 :]
        return value[1:end] if not rest or rest.startswith(":") else value
    if value.count(":") == 1:
        host, port = value.rsplit(":", 1)
        try:
            int(port)
        except ValueError:
            return value
        return host
    return value


class _UvicornTrust:
    """uvicorn's _TrustedHosts: addresses, networks, and anything else as literal text."""

    def __init__(self, text: str) -> None:
        self.always = text.strip() == "*"
        self.hosts: set[IPAddress] = set()
        self.networks: set[IPNetwork] = set()
        self.literals: set[str] = set()
        for item in (item.strip() for item in text.split(",")):
            try:
                if "/" in item:
                    self.networks.add(ipaddress.ip_network(item))
                else:
                    self.hosts.add(ipaddress.ip_address(item))
            except ValueError:
                self.literals.add(item)

    def nobody(self) -> bool:
        return not (self.always or self.hosts or self.networks or any(self.literals))

    def __contains__(self, host: str) -> bool:
        if self.always:
            return True
        if not host:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host in self.literals
        return address in self.hosts or any(address in network for network in self.networks)


def uvicorn_may_have_rewritten(
    peer: str | None, forwarded_for: str | None, uvicorn_trust: str | None
) -> bool:
    """Whether `peer` may be an address uvicorn took from X-Forwarded-For rather than the socket's.

    uvicorn rewrites when the socket peer is in its trust list (`uvicorn_trust`, the
    FORWARDED_ALLOW_IPS text it started with) and the header is present; the new peer is then the
    right-most entry it does not trust (the left-most if it trusts them all). So a peer that
    equals that entry may have been rewritten; any other peer was not.
    """
    if not forwarded_for or not peer or uvicorn_trust is None:
        return False
    trust = _UvicornTrust(uvicorn_trust)
    if trust.nobody():  # FORWARDED_ALLOW_IPS="": uvicorn rewrites nothing
        return False
    hosts = [item.strip() for item in forwarded_for.split(",")]
    pick = _uvicorn_host(hosts[0])
    if not trust.always:
        for item in reversed(hosts):
            if _uvicorn_host(item) not in trust:
                pick = _uvicorn_host(item)
                break
    return bool(pick) and peer == pick


def connection_key(
    peer: str | None,
    forwarded_for: str | None,
    trusted: tuple[IPNetwork, ...],
    secret: Secret | bytes,
    uvicorn_trust: str | None = None,
) -> str | None:
    """The client key of one connection: `client_key` of `client_address`, or `unverified_key`
    when uvicorn may have put a header's address in place of the peer; None without a peer."""
    if uvicorn_may_have_rewritten(peer, forwarded_for, uvicorn_trust):
        return unverified_key(secret)
    address = client_address(peer, forwarded_for, trusted)
    return None if address is None else client_key(address, secret)
