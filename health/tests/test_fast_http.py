"""The plain-HTTP probe client (health/probes/fast.py) against real local servers that
misbehave on purpose: raw sockets on 127.0.0.1, each scripted per test."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from health.choices import CheckStatus, HttpMethod
from health.probes.fast import idle_limit
from health.probes.http import MAX_BODY_BYTES
from health.probes.runtime import runtime
from health.specs import ProbeSpec
from health.tests.test_probes import free_port, probe

Handler = Callable[[socket.socket, "RawServer"], None]
HEALTH = json.dumps({"status": "pass"}).encode()


def reply(body: bytes = HEALTH, status: str = "200 OK", extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/health+json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def read_head(sock: socket.socket) -> bytes:
    """One request head, or b"" when the client closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    return data


class RawServer:
    """A TCP server on 127.0.0.1:0 running `handler` per accepted connection in a thread."""

    def __init__(self, handler: Handler) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        outer = self

        class Handle(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer.connections += 1
                with contextlib.suppress(OSError):  # the client went away: its business
                    handler(self.request, outer)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handle)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], RawServer]]:
    started: list[RawServer] = []

    def start(handler: Handler) -> RawServer:
        server = RawServer(handler)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def keep_alive(sock: socket.socket, server: RawServer) -> None:
    while head := read_head(sock):
        server.requests.append(head)
        sock.sendall(reply())


def test_one_connection_serves_every_period(serve: Callable[[Handler], RawServer]) -> None:
    # given an instance that keeps connections alive
    server = serve(keep_alive)
    # when it is probed three times
    results = [probe(ProbeSpec(), server.port) for _ in range(3)]
    # then every probe passed over one connection, each asking GET /health of the instance
    assert [r.status for r in results] == [CheckStatus.PASS] * 3
    assert server.connections == 1
    assert runtime().fast.opened == 1
    first = server.requests[0].decode()
    assert first.startswith("GET /health HTTP/1.1\r\n")
    assert f"\r\nHost: 127.0.0.1:{server.port}\r\n" in first
    assert "\r\nUser-Agent: Signalbox-Health/1\r\n" in first


def test_a_server_closing_after_each_answer_gets_a_new_connection(
    serve: Callable[[Handler], RawServer],
) -> None:
    # given an instance that answers once per connection and says so
    def once(sock: socket.socket, server: RawServer) -> None:
        read_head(sock)
        sock.sendall(reply(extra="Connection: close\r\n"))

    server = serve(once)
    # when probed twice, then both pass, each on its own connection
    assert probe(ProbeSpec(), server.port).status == CheckStatus.PASS
    assert probe(ProbeSpec(), server.port).status == CheckStatus.PASS
    assert server.connections == 2


def test_a_kept_connection_the_server_dropped_is_asked_again_on_a_new_one(
    serve: Callable[[Handler], RawServer],
) -> None:
    # given an instance that answers, keeps the socket a moment, then closes it silently
    # (its idle timeout), before the next probe comes
    def idle_timeout(sock: socket.socket, server: RawServer) -> None:
        read_head(sock)
        sock.sendall(reply())
        time.sleep(0.05)

    server = serve(idle_timeout)
    assert probe(ProbeSpec(), server.port).status == CheckStatus.PASS
    time.sleep(0.3)
    # when probed again, then the probe passes (a fresh connection), not a spurious failure
    result = probe(ProbeSpec(), server.port)
    assert (result.status, result.reason) == (CheckStatus.PASS, "HTTP 200")
    assert server.connections == 2


def test_chunked_bodies_are_read_whole(serve: Callable[[Handler], RawServer]) -> None:
    document = json.dumps(
        {"status": "warn", "checks": {"disk": [{"status": "warn", "output": "91% full"}]}}
    ).encode()

    def chunked(sock: socket.socket, server: RawServer) -> None:
        while read_head(sock):
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/health+json\r\n"
            sock.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
            for start in range(0, len(document), 7):
                part = document[start : start + 7]
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
                time.sleep(0.001)
            sock.sendall(b"0\r\n\r\n")

    server = serve(chunked)
    result = probe(ProbeSpec(), server.port)
    # the whole document was parsed: its warning and component reached the verdict
    assert result.status == CheckStatus.WARN
    assert result.reason == "health: warn; component disk warn: 91% full"
    # and the connection stayed usable
    assert probe(ProbeSpec(), server.port).status == CheckStatus.WARN
    assert server.connections == 1


def test_a_body_ending_at_close_without_length_is_judged(
    serve: Callable[[Handler], RawServer],
) -> None:
    def until_close(sock: socket.socket, server: RawServer) -> None:
        read_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall systems nominal")
        sock.shutdown(socket.SHUT_WR)

    server = serve(until_close)
    result = probe(ProbeSpec(body_contains="nominal"), server.port)
    assert (result.status, result.reason) == (CheckStatus.PASS, "HTTP 200")


def test_a_gzip_body_is_decoded(serve: Callable[[Handler], RawServer]) -> None:
    body = gzip.compress(b"status: all systems nominal")

    def gzipped(sock: socket.socket, server: RawServer) -> None:
        while read_head(sock):
            sock.sendall(reply(body, extra="Content-Encoding: gzip\r\n"))

    server = serve(gzipped)
    assert probe(ProbeSpec(body_contains="nominal"), server.port).status == CheckStatus.PASS


@pytest.mark.parametrize("stall", ["before any byte", "after the head", "mid-body"])
def test_slow_or_partial_answers_time_out(
    serve: Callable[[Handler], RawServer], stall: str
) -> None:
    def slow(sock: socket.socket, server: RawServer) -> None:
        read_head(sock)
        if stall == "after the head":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n")
        elif stall == "mid-body":
            sock.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"status": ')
        time.sleep(2)

    server = serve(slow)
    started = time.perf_counter()
    result = probe(ProbeSpec(timeout_seconds=0.3), server.port)
    assert (result.status, result.reason) == (CheckStatus.FAIL, "timeout after 0.3 s")
    assert 250 < result.latency_ms < 1000
    assert time.perf_counter() - started < 1.5


def test_an_oversize_body_is_cut_at_the_cap_and_the_connection_dropped(
    serve: Callable[[Handler], RawServer],
) -> None:
    # given an instance answering 1 MB, its marker past the 64 KiB the probe reads
    body = b"x" * 1_000_000 + b"MARKER"

    def huge(sock: socket.socket, server: RawServer) -> None:
        while read_head(sock):
            sock.sendall(reply(body, extra="Content-Type: text/plain\r\n"))

    server = serve(huge)
    # when probed, then the probe answers quickly, judging only the first 64 KiB
    result = probe(ProbeSpec(body_contains="MARKER", timeout_seconds=2), server.port)
    assert (result.status, result.reason) == (CheckStatus.FAIL, "body lacks 'MARKER'")
    assert result.latency_ms < 1000
    assert probe(ProbeSpec(body_contains="xxx"), server.port).status == CheckStatus.PASS
    # and the unread rest was not left on a reused connection: a new one was opened
    assert server.connections == 2
    assert len(body) > MAX_BODY_BYTES


@pytest.mark.parametrize(
    "answer",
    [b"SSH-2.0-OpenSSH_9.6\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nBad\r\n\r\n"],
)
def test_a_malformed_response_fails_with_a_clear_reason(
    serve: Callable[[Handler], RawServer], answer: bytes
) -> None:
    def garbage(sock: socket.socket, server: RawServer) -> None:
        read_head(sock)
        sock.sendall(answer)
        time.sleep(0.5)

    server = serve(garbage)
    result = probe(ProbeSpec(timeout_seconds=2), server.port)
    assert result.status == CheckStatus.FAIL
    assert result.reason.startswith("error: malformed HTTP response: "), result.reason
    assert result.latency_ms < 400


def test_a_connection_closed_mid_response_fails_saying_so(
    serve: Callable[[Handler], RawServer],
) -> None:
    def cut(sock: socket.socket, server: RawServer) -> None:
        read_head(sock)
        sock.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"sta')

    server = serve(cut)
    result = probe(ProbeSpec(timeout_seconds=2), server.port)
    assert result.status == CheckStatus.FAIL
    assert result.reason.startswith("error: the instance closed the connection mid-response")


def test_connection_refused_is_said_plainly() -> None:
    result = probe(ProbeSpec(timeout_seconds=1), free_port())
    assert (result.status, result.reason) == (CheckStatus.FAIL, "connection refused")


def test_head_and_configured_headers(serve: Callable[[Handler], RawServer]) -> None:
    def head(sock: socket.socket, server: RawServer) -> None:
        while data := read_head(sock):
            server.requests.append(data)
            # HEAD: a Content-Length but no body follows
            sock.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 5000\r\n\r\n")

    server = serve(head)
    spec = ProbeSpec(method=HttpMethod.HEAD, headers=(("X-Probe", "yes"),))
    result = probe(spec, server.port)
    assert (result.status, result.reason) == (CheckStatus.PASS, "HTTP 204")
    assert result.latency_ms < 500
    assert server.requests[0].startswith(b"HEAD /health HTTP/1.1\r\n")
    assert b"\r\nX-Probe: yes\r\n" in server.requests[0]


def test_a_header_with_a_line_break_is_never_sent(serve: Callable[[Handler], RawServer]) -> None:
    server = serve(keep_alive)
    result = probe(ProbeSpec(headers=(("X-A", "b\r\nHost: evil"),)), server.port)
    assert result.status == CheckStatus.FAIL
    assert "line break" in result.reason
    assert server.requests == []


def test_many_probes_at_once_all_answer(
    serve: Callable[[Handler], RawServer], settings: Any
) -> None:
    # given more probes at once than the concurrency bound lets run
    server = serve(keep_alive)
    rt = runtime()
    rt.concurrency = 4

    async def many() -> list[Any]:
        import asyncio

        probes = [rt.probe(ProbeSpec(), "127.0.0.1", server.port) for _ in range(40)]
        return await asyncio.gather(*probes)

    results = rt.run(many())
    # then every one answered, over at most that many connections
    assert [r.status for r in results] == [CheckStatus.PASS] * 40
    assert server.connections <= 4


def test_past_the_idle_limit_connections_close_and_the_kept_ones_stay(
    serve: Callable[[Handler], RawServer],
) -> None:
    # given a process that may keep two idle connections, and three instances
    servers = [serve(keep_alive) for _ in range(3)]
    fast = runtime().fast
    fast.max_idle = 2
    # when they are probed round and round
    for _ in range(3):
        for server in servers:
            assert probe(ProbeSpec(), server.port).status == CheckStatus.PASS
    # then the first two kept their one connection; the third connected every time
    assert [s.connections for s in servers] == [1, 1, 3]


def test_at_the_cap_the_least_recently_used_idle_connection_is_evicted(
    serve: Callable[[Handler], RawServer],
) -> None:
    # given a client allowed three open connections, and four instances
    s1, s2, s3, s4 = (serve(keep_alive) for _ in range(4))
    fast = runtime().fast
    fast.max_open = 3
    fast.max_idle = idle_limit(3)
    for server in (s1, s2, s3):
        assert probe(ProbeSpec(), server.port).status == CheckStatus.PASS
    # s1 used again: s2 is now the least recently used
    assert probe(ProbeSpec(), s1.port).status == CheckStatus.PASS
    # when a fourth instance needs a connection
    assert probe(ProbeSpec(), s4.port).status == CheckStatus.PASS
    # then s2's connection went, and s1 and s3 keep theirs
    for server in (s1, s3, s2):
        assert probe(ProbeSpec(), server.port).status == CheckStatus.PASS
    assert [s.connections for s in (s1, s2, s3, s4)] == [1, 2, 1, 1]
    assert fast.evicted == 2  # s2 for s4, then s4 (least recent by then) for s2's return
