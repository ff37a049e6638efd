"""A TCP proxy that holds what the client sends for a fixed delay: a database
server at a distance, on this machine.

    python benchmarks/latency_proxy.py --upstream 127.0.0.1:55432 --delay 5

What one round trip costs: every chunk the client sends is forwarded to the
server ``delay_ms`` after the proxy read it, in order; what the server sends
back is forwarded at once. A chunk is held from its own arrival, never
behind an earlier one's wait, so a message split over several reads costs
the delay once, and so do messages sent without waiting for a reply (a
pipeline). A query (one message, one reply) therefore costs the delay once
more than without the proxy. Opening a PostgreSQL connection costs it once
per message the startup waits on: one with trust authentication and
``sslmode=disable``, two when the client asks for SSL first; TCP's own
handshake with the proxy is not delayed, nor is anything waiting on the
Terminate message that closes a connection. No protocol is parsed: it
proxies any TCP service.

``LatencyProxy`` runs in threads of the caller's process. Run as a script,
it prints ``port <number>`` once it listens, then answers commands read from
its standard input, one a line: ``delay <ms>`` sets the delay of the chunks
read from then on; ``count``, how many chunks it has forwarded to the
server; ``connections``, how many connections are open and the most that
were at once since it last answered that. It stops at the end of its input.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import threading
import time
from queue import SimpleQueue

CHUNK_SIZE = 65536


class LatencyProxy:
    """Listens on ``host:port`` (a free port by default) and forwards each
    connection to ``upstream``, delaying what the client sends by
    ``delay_ms``. ``start()`` returns once it listens; ``stop()`` closes the
    listener and every connection."""

    def __init__(
        self,
        upstream: tuple[str, int],
        delay_ms: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.upstream = upstream
        self.delay_ms = delay_ms  # read at each chunk: changing it applies at once
        self.address = (host, port)
        self.forwarded_chunks = 0
        self.open_connections = 0
        self.peak_connections = 0  # the most open at once since the last reset
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        assert self._listener is not None, "start() the proxy first"
        return self._listener.getsockname()[1]

    def start(self) -> LatencyProxy:
        self._listener = socket.create_server(self.address)
        threading.Thread(
            target=self._accept, args=(self._listener,), daemon=True
        ).start()
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            close_quietly(listener)
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            close_quietly(sock)

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stop() closed the listener
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                close_quietly(client)
                continue
            for sock in (client, server):
                # Each chunk goes out as soon as it is due, not batched by Nagle.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets |= {client, server}
                self.open_connections += 1
                self.peak_connections = max(
                    self.peak_connections, self.open_connections
                )
            self._forward(client, server)

    def _forward(self, client: socket.socket, server: socket.socket) -> None:
        """Three threads per connection: one reads the client and stamps each
        chunk with when it is due, one sends each to the server when due, one
        copies the server's replies back."""
        due_chunks: SimpleQueue[tuple[float, bytes]] = SimpleQueue()
        threads = [
            threading.Thread(target=self._read_client, args=(client, due_chunks)),
            threading.Thread(target=self._send_when_due, args=(due_chunks, server)),
            threading.Thread(target=copy, args=(server, client)),
        ]
        for thread in threads:
            thread.daemon = True
            thread.start()
        threading.Thread(
            target=self._close_when_done, args=(threads, client, server), daemon=True
        ).start()

    def _read_client(
        self, client: socket.socket, due_chunks: SimpleQueue[tuple[float, bytes]]
    ) -> None:
        while True:
            try:
                chunk = client.recv(CHUNK_SIZE)
            except OSError:
                chunk = b""
            due_chunks.put((time.monotonic() + self.delay_ms / 1000, chunk))
            if not chunk:
                return

    def _send_when_due(
        self, due_chunks: SimpleQueue[tuple[float, bytes]], server: socket.socket
    ) -> None:
        while True:
            due, chunk = due_chunks.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if chunk:
                # Counted before it goes: its reply cannot overtake the count.
                with self._lock:
                    self.forwarded_chunks += 1
            try:
                if not chunk:
                    server.shutdown(socket.SHUT_WR)
                    return
                server.sendall(chunk)
            except OSError:
                return

    def _close_when_done(
        self,
        threads: list[threading.Thread],
        client: socket.socket,
        server: socket.socket,
    ) -> None:
        threads[2].join()  # the server closed: nothing more will be answered
        for sock in (client, server):
            close_quietly(sock)
        with self._lock:
            self._sockets -= {client, server}
            self.open_connections -= 1

    def reset_peak(self) -> int:
        """The most connections open at once since the last reset; the count
        starts again from those open now."""
        with self._lock:
            peak, self.peak_connections = self.peak_connections, self.open_connections
        return peak


def copy(source: socket.socket, destination: socket.socket) -> None:
    """Copy ``source`` to ``destination`` until either closes."""
    while True:
        try:
            chunk = source.recv(CHUNK_SIZE)
            if not chunk:
                destination.shutdown(socket.SHUT_WR)
                return
            destination.sendall(chunk)
        except OSError:
            return


def close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # not connected, or closed already
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--delay", type=float, default=0.0, help="milliseconds")
    parser.add_argument("--port", type=int, default=0, help="default: a free one")
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    proxy = LatencyProxy((host, int(port)), args.delay, port=args.port).start()
    print(f"port {proxy.port}", flush=True)
    for line in sys.stdin:
        command, _, value = line.strip().partition(" ")
        if command == "delay":
            proxy.delay_ms = float(value)
            print(f"delay {proxy.delay_ms:g}", flush=True)
        elif command == "count":
            print(f"count {proxy.forwarded_chunks}", flush=True)
        elif command == "connections":
            peak = proxy.reset_peak()
            print(f"connections {proxy.open_connections} {peak}", flush=True)
        else:
            print(f"error: unknown command {line.strip()!r}", flush=True)
    proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
