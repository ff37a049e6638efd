"""The benchmark's latency proxy, in front of an echo server: it forwards
both ways, in order, counts what it sends and the connections it holds.
Timings are the benchmark's to measure, not asserted here."""

import socket
import threading

import pytest

from benchmarks.latency_proxy import LatencyProxy, close_quietly


@pytest.fixture
def echo_server():
    """A server that sends back what it receives, one connection at a time."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                while chunk := connection.recv(65536):
                    connection.sendall(chunk)

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()
    close_quietly(listener)


def receive(sock, size):
    received = b""
    while len(received) < size:
        chunk = sock.recv(65536)
        assert chunk, "the proxy closed the connection"
        received += chunk
    return received


def test_proxy_forwards_each_message_and_its_reply_in_order(echo_server):
    with (
        LatencyProxy(echo_server, delay_ms=1) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port)) as client,
    ):
        for number in range(5):
            message = f"query {number}".encode()
            client.sendall(message)
            assert receive(client, len(message)) == message
    assert proxy.forwarded_chunks == 5


def test_proxy_keeps_the_order_of_messages_sent_without_waiting(echo_server):
    messages = [bytes([number]) * 1000 for number in range(20)]
    with (
        LatencyProxy(echo_server, delay_ms=1) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port)) as client,
    ):
        for message in messages:
            client.sendall(message)
        assert receive(client, 20_000) == b"".join(messages)


def test_proxy_counts_open_connections_and_their_peak(echo_server):
    with LatencyProxy(echo_server) as proxy:
        clients = [socket.create_connection(("127.0.0.1", proxy.port))]
        clients[0].sendall(b"ping")
        assert receive(clients[0], 4) == b"ping"
        assert (proxy.open_connections, proxy.reset_peak()) == (1, 1)
        close_quietly(clients[0])
        while proxy.open_connections:  # the echo server closes in turn
            threading.Event().wait(0.01)
        assert proxy.reset_peak() == 1
        assert proxy.reset_peak() == 0
