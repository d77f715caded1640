"""A TCP proxy on 127.0.0.1 that a test can make go silent: it keeps accepting connections
but relays nothing, as an API server that hangs does (requests time out, none fail fast)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class SilentableProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.silent = threading.Event()
        self.closed = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        pair = {client: upstream, upstream: client}
        with client, upstream:
            while not self.closed.is_set():
                readable, _, _ = select.select(list(pair), [], [], 0.2)
                for sock in readable:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    if not self.silent.is_set():
                        with contextlib.suppress(OSError):
                            pair[sock].sendall(data)

    def close(self) -> None:
        self.closed.set()
        self.server.close()
