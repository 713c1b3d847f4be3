"""The plain-HTTP probe client: HTTP/1.1 keep-alive on asyncio transports, parsed by httptools.

Why not aiohttp here: a probe asks one small thing of one instance every period, and a
general client's per-request machinery (a task, a response object, a header multidict, a
stream reader, cookie and redirect handling) cost more CPU than the whole rest of the
scheduler (bench/RESULTS.md, health_throughput: aiohttp 0.265 CPU-s per 1,000 requests).
This client keeps one connection per instance across periods, pre-builds each request's
bytes once, keeps only the three response headers a probe reads (Content-Type, Location,
Content-Encoding), and times out with one `loop.call_at` timer per probe; nothing runs in
a task except opening a new connection.

What it keeps of docs/health.md: the request aiohttp sent (same target, Host, User-Agent
and configured headers), same-host redirects only (at most MAX_REDIRECTS, judged by
`health.probes.http.judge` exactly as before), the SSRF guard on the address connected
to (IP literals checked before connecting, names resolved through `GuardedResolver` on
every new connection), the 64 KiB body cap and the timeout over the whole exchange.
HTTPS probes stay on aiohttp (TLS details), see health/probes/runtime.py.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import time
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any

import httptools

from controlplane.outbound import GuardedResolver, Refused, check_host, is_ip
from health.choices import HttpMethod
from health.probes import ProbeResult
from health.probes.http import (
    MAX_BODY_BYTES,
    MAX_REDIRECTS,
    REDIRECT_STATUSES,
    _same_origin,
    base_url,
    judge,
)
from health.specs import ProbeSpec, instance_url

logger = logging.getLogger(__name__)
USER_AGENT = "Signalbox-Health/1"
# Idle connections live longer than the default 10 s period, so the next probe of each
# instance finds its socket open (same figure as the aiohttp pool kept).
KEEPALIVE_SECONDS = 30.0
# Descriptors left for everything else in the process (database, Redis, log files, the
# aiohttp pool for HTTPS, TCP/TLS/gRPC probes): the plain-HTTP client opens at most
# RLIMIT_NOFILE minus this. A Celery prefork child with its PostgreSQL and Redis
# connections holds 16 descriptors before it probes anything (measured: 2 sockets, 7 pipes,
# 4 epoll/eventfd, 2 /dev/null; a prefork child adds a few pipes to its parent);
# 1,024 also covers the aiohttp pool at the default concurrency of 500. Under a small limit
# (tests run at 256) a quarter of it is kept back instead.
FD_RESERVE = 1024
# Of the connections the client may open, this many stay free for new connections (probes
# of instances without a kept one) so they need not evict a warm one; the rest may idle.
CONNECT_HEADROOM = 512
# After EMFILE/ENFILE (the process or the system is out of descriptors after all) the
# connect is tried again this much later, after one idle connection was closed; the probe's
# own timeout still bounds the whole wait.
EMFILE_RETRY_SECONDS = 0.02
# Request-bytes cache entries before it is dropped and rebuilt (one per instance and spec).
MAX_REQUEST_CACHE = 200_000

Done = Callable[[ProbeResult], None]
_WANTED = {b"content-type": 0, b"location": 1, b"content-encoding": 2}
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})


def raise_descriptor_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (once per process); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # e.g. above fs.nr_open: keep what we have
            logger.warning("cannot raise RLIMIT_NOFILE from %d to %d", soft, target)
    return soft


def open_limit(soft: int | None = None) -> int:
    """Connections the plain-HTTP client may hold open (idle, busy or connecting)."""
    if soft is None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    reserve = min(FD_RESERVE, max(32, soft // 4))
    return max(16, soft - reserve)


def idle_limit(max_open: int) -> int:
    """Of those, how many may sit idle: the rest is headroom for new connections."""
    return max(8, max_open - min(CONNECT_HEADROOM, max_open // 4))


class _Request:
    """One request's bytes and where it goes, built once per (instance, spec path)."""

    __slots__ = ("error", "head", "origin", "url")

    def __init__(self, spec: ProbeSpec, host: str, port: int, path: str | None = None) -> None:
        self.origin = base_url("http", host, port)
        self.url = instance_url(self.origin, spec.path if path is None else path)
        self.error = ""
        self.head = b""
        if self.url is None:
            self.error = f"refused: path {spec.path!r} leaves the instance"
            return
        netloc = f"[{host}]" if ":" in host else host
        if port != 80:
            netloc = f"{netloc}:{port}"
        lines = [f"{spec.method} {self.url.raw_path_qs} HTTP/1.1", f"Host: {netloc}"]
        names = {name.lower() for name, _ in spec.headers}
        if "user-agent" not in names:
            lines.append(f"User-Agent: {USER_AGENT}")
        if "accept" not in names:
            lines.append("Accept: */*")
        for name, value in spec.headers:
            if any(c in name + value for c in "\r\n\0") or not name or ":" in name:
                self.error = f"error: header {name!r} has a line break or a colon in its name"
                return
            lines.append(f"{name}: {value}")
        if spec.method == HttpMethod.POST and "content-length" not in names:
            lines.append("Content-Length: 0")
        try:
            self.head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError:
            self.error = "error: a header is not Latin-1 text"


class _Exchange:
    """One probe in flight: its request, its deadline, what came back so far."""

    __slots__ = (
        "client", "conn", "connecting", "done", "hop", "host", "key", "port", "refused_redirect",
        "request", "retried", "spec", "started", "timer",
    )  # fmt: skip

    def __init__(self, client: FastHttp, spec: ProbeSpec, host: str, port: int, done: Done) -> None:
        self.client = client
        self.spec = spec
        self.host = host
        self.port = port
        self.key = (host, port)
        self.done: Done | None = done
        self.started = time.perf_counter()
        self.hop = 0
        self.retried = False
        self.refused_redirect = ""
        self.conn: _Conn | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.request: _Request = client.request_for(spec, host, port)
        self.timer: asyncio.TimerHandle | None = None

    def ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def finish(self, result: ProbeResult) -> None:
        done, self.done = self.done, None
        if done is None:
            return
        if self.timer is not None:
            self.timer.cancel()
        self.conn = None
        done(result)

    def fail(self, reason: str) -> None:
        self.finish(ProbeResult.failed(reason, self.ms()))

    def on_timeout(self) -> None:
        if self.done is None:
            return
        if self.connecting is not None:
            self.connecting.cancel()
        conn = self.conn
        if conn is not None:
            conn.exchange = None
            conn.transport.abort()  # type: ignore[union-attr]
        self.fail(f"timeout after {self.spec.timeout_seconds:g} s")

    def answered(
        self, status: int, content_type: str, location: str, body: bytes, conn: _Conn
    ) -> None:
        """A whole response: follow a same-host redirect on the same connection, or judge."""
        if status in REDIRECT_STATUSES and location:
            target = instance_url(self.request.url, location)  # type: ignore[arg-type]
            if (
                target is not None
                and _same_origin(target, self.request.origin)
                and self.hop < MAX_REDIRECTS
            ):
                self.hop += 1
                self.request = _Request(self.spec, self.host, self.port, target.raw_path_qs)
                if conn.reusable():
                    self.client.send(self, conn)
                else:
                    self.client.release(conn)  # closes it
                    self.client.send(self, None)
                return
            self.refused_redirect = str(target) if target is not None else location
        self.client.release(conn)
        self.finish(judge(self.spec, status, content_type, body, self.ms(), self.refused_redirect))


class _Conn(asyncio.Protocol):
    """One kept-alive connection to one instance, answering one exchange at a time."""

    __slots__ = (
        "body", "capped", "client", "closed", "complete", "exchange", "framed", "headers",
        "idle_since", "keep_alive", "key", "parser", "received", "size", "status", "transport",
        "uses",
    )  # fmt: skip

    def __init__(self, client: FastHttp, key: tuple[str, int]) -> None:
        self.client = client
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.exchange: _Exchange | None = None
        self.closed = False
        self.idle_since = 0.0
        self.uses = 0
        # One parser for the connection's life: httptools starts over after each complete
        # response, and a connection whose response was not complete is never reused.
        self.parser = httptools.HttpResponseParser(self)
        self._reset()

    def _reset(self) -> None:
        self.headers: list[str] = ["", "", ""]
        self.body: list[bytes] = []
        self.received = 0
        self.size = 0
        self.framed = False
        self.status = 0
        self.complete = False
        self.capped = False
        self.keep_alive = True

    def reusable(self) -> bool:
        return not self.closed and self.keep_alive and not self.capped

    # -- asyncio -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.client.made(self)

    def send(self, exchange: _Exchange) -> None:
        self.exchange = exchange
        exchange.conn = self
        self.uses += 1
        self._reset()
        self.transport.write(exchange.request.head)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # bytes nobody asked for: this connection cannot be trusted
            self.transport.close()  # type: ignore[union-attr]
            return
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.keep_alive = False
            self.complete = True
        except httptools.HttpParserError as exc:
            self.exchange = None
            self.transport.close()  # type: ignore[union-attr]
            exchange.fail(f"error: malformed HTTP response: {_parser_reason(exc)}")
            return
        if self.complete:
            self._answered(exchange)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.client.forget(self)
        self.client.lost(self)
        exchange, self.exchange = self.exchange, None
        if exchange is None or exchange.done is None:
            return
        if self.status and not self.framed and not self.complete:
            # No Content-Length, not chunked: the body ends where the connection does.
            self.keep_alive = False
            self._answered(exchange)
        elif self.received == 0 and self.uses > 1 and not exchange.retried:
            # A kept-alive connection the instance closed as the request went out (its
            # idle timeout): nothing was answered, so ask once more on a new connection.
            exchange.retried = True
            self.client.send(exchange, None)
        else:
            why = f": {exc}" if exc else ""
            exchange.fail(f"error: the instance closed the connection mid-response{why}")

    def _answered(self, exchange: _Exchange) -> None:
        self.exchange = None
        body = b"".join(self.body)
        content_type, location, encoding = self.headers
        if encoding and body:
            try:
                body = _decoded(body, encoding)
            except zlib.error as exc:
                self.keep_alive = False
                self.client.release(self)
                exchange.fail(f"error: cannot decode {encoding} body: {exc}")
                return
        exchange.answered(self.status, content_type, location, body, self)

    # -- httptools callbacks -------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        index = _WANTED.get(lowered)
        if index is not None:
            self.headers[index] = value.decode("latin-1")
        elif lowered in _FRAMING:
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        exchange = self.exchange
        if exchange is not None and exchange.spec.method == HttpMethod.HEAD:
            # A HEAD answer has no body whatever its Content-Length says; httptools cannot
            # be told, so this connection ends here.
            self.keep_alive = False
            self.complete = True

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        room = MAX_BODY_BYTES - self.size
        if len(body) >= room:
            # The cap: judge what fits; the rest is never read, so the connection goes.
            self.body.append(body[:room])
            self.size = MAX_BODY_BYTES
            self.capped = True
            self.complete = True
            return
        self.size += len(body)
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class FastHttp:
    """The client: a pool of idle connections by instance, and the probes started on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.idle: dict[tuple[str, int], list[_Conn]] = {}
        self.lru: dict[_Conn, None] = {}  # every idle connection, longest idle first
        self.conns: set[_Conn] = set()  # every open connection (idle or busy)
        self.connecting = 0  # connects under way
        self.max_open = open_limit()
        self.max_idle = idle_limit(self.max_open)
        # Probes waiting for a descriptor: every connection busy at the cap, or EMFILE.
        self.blocked: deque[_Exchange] = deque()
        self._unblock_at: asyncio.TimerHandle | None = None
        self.evicted = 0  # idle connections closed to make room (benchmark, tests)
        self.descriptor_waits = 0  # probes that waited for a descriptor
        self.requests: dict[tuple[Any, ...], _Request] = {}
        self.resolver: GuardedResolver | None = None
        self.opened = 0  # connections opened, for tests and the benchmark
        self._next_sweep = 0.0

    def request_for(self, spec: ProbeSpec, host: str, port: int) -> _Request:
        key = (spec.method, spec.path, spec.headers, host, port)
        found = self.requests.get(key)
        if found is None:
            if len(self.requests) >= MAX_REQUEST_CACHE:
                self.requests.clear()
            found = self.requests[key] = _Request(spec, host, port)
        return found

    def start(self, spec: ProbeSpec, host: str, port: int, done: Done) -> None:
        """Probe host:port with `spec` (plain HTTP); `done` gets the result, exactly once."""
        exchange = _Exchange(self, spec, host, port, done)
        if exchange.request.error:
            exchange.finish(ProbeResult.failed(exchange.request.error, 0.0))
            return
        try:
            check_host(host)
        except Refused as exc:
            exchange.fail(str(exc))
            return
        exchange.timer = self.loop.call_at(
            self.loop.time() + spec.timeout_seconds, exchange.on_timeout
        )
        self.send(exchange, self._take(exchange.key))

    async def probe(self, spec: ProbeSpec, host: str, port: int) -> ProbeResult:
        future: asyncio.Future[ProbeResult] = self.loop.create_future()
        self.start(spec, host, port, future.set_result)
        return await future

    def send(self, exchange: _Exchange, conn: _Conn | None) -> None:
        if conn is not None:
            conn.send(exchange)
            return
        exchange.conn = None
        if self.open_count() >= self.max_open and not self._evict_one():
            # Every connection is busy at the cap: wait for one to finish, never fail.
            self._block(exchange, 0.0)
            return
        self._start_connect(exchange)

    def _start_connect(self, exchange: _Exchange) -> None:
        self.connecting += 1
        task = exchange.connecting = self.loop.create_task(self._connect(exchange))
        # Counted down when the task ends however it ends (a task cancelled before it ran
        # never enters the coroutine's `finally`).
        task.add_done_callback(self._connect_ended)

    def _connect_ended(self, _task: asyncio.Task[None]) -> None:
        self.connecting -= 1
        if self.blocked and self._unblock_at is None:  # (an EMFILE retry waits its timer)
            self._unblock()

    def open_count(self) -> int:
        return len(self.conns) + self.connecting

    def _block(self, exchange: _Exchange, delay: float) -> None:
        self.descriptor_waits += 1
        self.blocked.append(exchange)
        if delay and self._unblock_at is None:
            self._unblock_at = self.loop.call_later(delay, self._unblock)

    def _unblock(self) -> None:
        """Start waiting probes while there is room (a connection closed, or time passed)."""
        self._unblock_at = None
        while self.blocked:
            exchange = self.blocked[0]
            if exchange.done is None:  # timed out while waiting
                self.blocked.popleft()
                continue
            if self.open_count() >= self.max_open and not self._evict_one():
                return
            self.blocked.popleft()
            conn = self._take(exchange.key)  # one may have come free for this very instance
            if conn is not None:
                conn.send(exchange)
            else:
                self._start_connect(exchange)

    def _evict_one(self) -> bool:
        """Close the least recently used idle connection; False when none is idle."""
        for conn in self.lru:
            self.forget(conn)
            self.conns.discard(conn)  # its descriptor goes with the close, counted now
            self.evicted += 1
            conn.transport.close()  # type: ignore[union-attr]
            return True
        return False

    def made(self, conn: _Conn) -> None:
        self.conns.add(conn)

    def lost(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        if self.blocked:
            self.loop.call_soon(self._unblock)

    async def _connect(self, exchange: _Exchange) -> None:
        host, port = exchange.key
        try:
            if is_ip(host):
                address = host.strip("[]")
            else:
                # Names: resolved and every address checked on each new connection.
                if self.resolver is None:
                    self.resolver = GuardedResolver()
                address = (await self.resolver.resolve(host, port))[0]["host"]
            _, conn = await self.loop.create_connection(
                lambda: _Conn(self, exchange.key), address, port
            )
        except asyncio.CancelledError:
            return  # the probe timed out while connecting; it has already been answered
        except Refused as exc:
            exchange.fail(str(exc))
            return
        except ConnectionRefusedError:
            exchange.fail("connection refused")
            return
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                # Out of descriptors after all (something else in the process holds more
                # than the reserve, or the system table is full): not the instance's fault.
                # Make room and try again shortly; the probe's timeout bounds the wait.
                if self.descriptor_waits == 0:
                    logger.warning(
                        "out of file descriptors at %d open probe connections (%s)",
                        self.open_count(),
                        exc,
                    )
                self._evict_one()
                self._block(exchange, EMFILE_RETRY_SECONDS)
                return
            exchange.fail(f"cannot connect: {exc}")
            return
        finally:
            exchange.connecting = None
        self.opened += 1
        if exchange.done is None:  # answered (timed out) meanwhile
            conn.transport.close()  # type: ignore[union-attr]
            return
        conn.send(exchange)

    # -- the idle pool -------------------------------------------------------------------

    def _take(self, key: tuple[str, int]) -> _Conn | None:
        now = self.loop.time()
        if now >= self._next_sweep:
            self._sweep(now)
        conns = self.idle.get(key)
        while conns:
            conn = conns.pop()
            if not conns:
                del self.idle[key]
            self.lru.pop(conn, None)
            if not conn.closed and not conn.transport.is_closing():  # type: ignore[union-attr]
                return conn
            conns = self.idle.get(key)
        return None

    def release(self, conn: _Conn) -> None:
        """Back to the pool if it can answer again, else closed."""
        if not conn.reusable():
            if not conn.closed:
                conn.transport.close()  # type: ignore[union-attr]
            return
        if len(self.lru) >= self.max_idle:
            # Full: this one closes and the kept ones stay. Probes come round in a cycle,
            # and evicting the least recently used on a cycle longer than the pool would
            # make every probe miss; keeping the first max_idle makes that share hit.
            conn.transport.close()  # type: ignore[union-attr]
            return
        conn.idle_since = self.loop.time()
        self.idle.setdefault(conn.key, []).append(conn)
        self.lru[conn] = None

    def forget(self, conn: _Conn) -> None:
        if self.lru.pop(conn, False) is None:
            conns = self.idle.get(conn.key)
            if conns and conn in conns:
                conns.remove(conn)
                if not conns:
                    del self.idle[conn.key]

    def _sweep(self, now: float) -> None:
        """Close connections idle past KEEPALIVE_SECONDS (the oldest come first)."""
        self._next_sweep = now + KEEPALIVE_SECONDS / 3
        for conn in list(self.lru):
            if now - conn.idle_since < KEEPALIVE_SECONDS:
                break
            self.forget(conn)
            conn.transport.close()  # type: ignore[union-attr]

    def close(self) -> None:
        for conn in list(self.lru):
            self.forget(conn)
            conn.transport.close()  # type: ignore[union-attr]


def _decoded(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        # 47: a gzip or zlib header, detected; at most the cap comes out.
        return zlib.decompressobj(47).decompress(body, MAX_BODY_BYTES)
    return body  # an encoding it cannot read is judged as sent (body checks then fail)


def _parser_reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]
