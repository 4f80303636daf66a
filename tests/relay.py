"""A TCP relay and a minimal reverse proxy on 127.0.0.2, for tests that need a second client
address on this machine (a browser here always connects from 127.0.0.1). Loopback only; each
relay stops by itself after RELAY_LIFETIME_S, or RELAY_IDLE_S without traffic."""

from __future__ import annotations

import selectors
import socket
import threading
import time

PROXY_HOST = "127.0.0.2"
RELAY_LIFETIME_S = 120.0
RELAY_IDLE_S = 30.0


class Relay:
    """Listens on 127.0.0.2 and forwards each connection to 127.0.0.1:<port> from 127.0.0.2, so
    the server's peer is 127.0.0.2. With `forwarded_for`, it is a minimal HTTP reverse proxy: to
    each request it adds its own `X-Forwarded-For: <forwarded_for>` header after the client's
    (asking for `Connection: close` except on a WebSocket upgrade, so that every request passes
    through here). Stops when the block ends, after RELAY_LIFETIME_S, or idle connections after
    RELAY_IDLE_S, whichever comes first."""

    def __init__(self, target_port: int, forwarded_for: str | None = None):
        self.target_port = target_port
        self.forwarded_for = forwarded_for
        self.deadline = time.monotonic() + RELAY_LIFETIME_S
        self.stopping = threading.Event()
        self.listener = socket.create_server((PROXY_HOST, 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self.requests: list[bytes] = []  # request heads as sent upstream
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{PROXY_HOST}:{self.port}"

    def __enter__(self) -> Relay:
        self._accepting.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for thread in [self._accepting, *self.threads]:
            thread.join(timeout=5)
        self.listener.close()

    def _over(self) -> bool:
        return self.stopping.is_set() or time.monotonic() > self.deadline

    def _accept(self) -> None:
        while not self._over():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(
            ("127.0.0.1", self.target_port), timeout=10, source_address=(PROXY_HOST, 0)
        )
        try:
            if self.forwarded_for is not None:
                head, rest = self._read_head(client)
                if head is None:
                    return
                head = self._rewrite(head)
                self.requests.append(head)
                upstream.sendall(head + rest)
            self._pipe(client, upstream)
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()

    def _read_head(self, client: socket.socket) -> tuple[bytes | None, bytes]:
        client.settimeout(0.2)
        data, idle_until = b"", time.monotonic() + RELAY_IDLE_S
        while b"\r\n\r\n" not in data:
            if self._over() or time.monotonic() > idle_until or len(data) > 65536:
                return None, b""
            try:
                chunk = client.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return None, b""
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        return head, rest

    def _rewrite(self, head: bytes) -> bytes:
        lines = head.split(b"\r\n")
        upgrade = any(line.lower().startswith(b"upgrade:") for line in lines[1:])
        if not upgrade:
            drop = (b"connection:", b"keep-alive:")
            lines = [lines[0]] + [x for x in lines[1:] if not x.lower().startswith(drop)]
            lines.append(b"Connection: close")
        lines.append(b"X-Forwarded-For: " + self.forwarded_for.encode("ascii"))
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        other = {a: b, b: a}
        with selectors.DefaultSelector() as sel:
            for s in (a, b):
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ)
            idle_since = time.monotonic()
            while not self._over() and time.monotonic() - idle_since < RELAY_IDLE_S:
                for key, _ in sel.select(timeout=0.2):
                    try:
                        data = key.fileobj.recv(65536)
                    except BlockingIOError:
                        continue
                    if not data:
                        return
                    target = other[key.fileobj]
                    target.setblocking(True)
                    target.sendall(data)
                    target.setblocking(False)
                    idle_since = time.monotonic()
