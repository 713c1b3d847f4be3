"""The hub: fan-out of pushed fragments to the pages of one web process.

One Redis pub/sub connection per event loop, subscribed to the topics its pages watch;
fragments are batched into one websocket message per page per `BATCH_WINDOW_SECONDS`
(leading edge: the first after a quiet spell goes at once). Under the web process as the
Procfile runs it (uvicorn's websockets-sansio protocol, no per-message deflate) a topic's
batch is framed once and the same bytes are written to every socket showing it; other
servers get it through the ASGI send, from a writer task per page.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import redis

from controlplane import redis as redis_clients
from controlplane.live.wire import channel_prefix, decode, group_name

logger = logging.getLogger(__name__)

# The hub sends the first fragment after a quiet spell at once, and what arrives in the next
# BATCH_WINDOW_SECONDS as one websocket message per page at the window's end (and so on while
# fragments keep coming). One window for every topic of the process: a page on several
# topics gets one message per window, and the process one wake-up. At 100 events/s that is
# ~10 messages per page per second instead of 100: the web process's cost is per websocket
# message, not per byte, and an event still shows within the window. Measured (bench/
# live_fanout, 2,000 pages on one topic, 2026-12-04): ~10 µs of CPU per message with frames
# built once, so 2,000 pages x 10 messages/s is ~0.2 of a core for one uvicorn process.
BATCH_WINDOW_SECONDS = 0.1
# A page whose socket has not taken a message for this long, or has this much waiting, is
# closed (1013, "try again later": the page reconnects and re-syncs): one stuck client must
# neither hold the others back nor make the process buffer without bound.
SEND_STALL_SECONDS = 5.0
MAX_PENDING_BYTES = 1_000_000
# A dropped page's close frame waits behind what its socket has not taken; past this the
# connection is cut (the page sees it dropped, reconnects and re-syncs all the same).
CLOSE_WAIT_SECONDS = 2.0

CLOSE_TOO_SLOW = 1013  # retried by the page (htmx's ws extension retries 1011-1013)
CLOSE_LIVE_LOST = 1012  # the hub lost Redis: reconnect (and re-sync: pushes may be lost)


Send = Callable[[dict[str, Any]], Awaitable[None]]


def text_frame(text: str) -> bytes:
    """`text` as one unmasked, uncompressed websocket text frame (RFC 6455, 5.2).

    A server's frames are never masked, so without per-message deflate the bytes are the
    same for every socket: the hub builds them once per batch.
    """
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


def _sansio_protocol(send: Send) -> Any | None:
    """uvicorn's websockets-sansio connection behind `send`, if frames may be written to it.

    Only that protocol (the Procfile's `--ws websockets-sansio`) and only without extensions
    (per-message deflate compresses each socket's messages with its own context).
    """
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:  # pragma: no cover - uvicorn is a requirement
        return None
    protocol = getattr(send, "__self__", None)
    if not isinstance(protocol, WebSocketsSansIOProtocol) or protocol.conn.extensions:
        return None
    return protocol


class LiveClient:
    """One page's websocket as the hub sees it: its topics and how to write to it.

    Direct (`transport` set: uvicorn's websockets-sansio without deflate): the hub writes
    each batch's frame, built once for all the pages of a topic, straight to the socket's
    transport; nothing awaits, and the kernel and the transport's buffer take the bytes.
    Otherwise a writer task sends what is waiting through the ASGI send, joined into one
    message, so one slow socket only ever holds up itself.
    """

    def __init__(self, hub: Hub, send: Send, topics: list[str]) -> None:
        self.hub = hub
        self.send = send
        self.topics = topics
        self.pending: list[str] = []
        self.pending_bytes = 0
        self.sending_since: float | None = None
        self.gone = False
        self.transport: asyncio.Transport | None = None
        self._protocol: Any = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin sending (once the socket is accepted); anything already waiting goes first."""
        if self.gone or self._task is not None or self.transport is not None:
            return
        protocol = _sansio_protocol(self.send)
        if protocol is not None:
            self._protocol, self.transport = protocol, protocol.transport
            waiting, self.pending, self.pending_bytes = self.pending, [], 0
            if waiting:
                self.write(text_frame("".join(waiting)), self.hub.loop.time())
            return
        self._task = asyncio.get_running_loop().create_task(self._write())

    def write(self, frame: bytes, now: float) -> None:
        """Direct clients: put one frame on the socket, or drop a page that stopped reading.

        The transport keeps what the kernel did not take; it pauses the protocol past its
        high-water mark (64 KiB). A page paused for `SEND_STALL_SECONDS`, or that would
        have more than `MAX_PENDING_BYTES` buffered, is dropped with 1013.
        """
        protocol, transport = self._protocol, self.transport
        assert transport is not None
        if self.gone or protocol.close_sent or protocol.disconnected or transport.is_closing():
            return  # closing: the consumer's disconnect makes it leave
        if protocol.writable.is_set():
            self.sending_since = None
        elif self.sending_since is None:
            self.sending_since = now
        elif now - self.sending_since > SEND_STALL_SECONDS:
            self.hub.drop(self, CLOSE_TOO_SLOW, "its socket took no message for too long")
            return
        if transport.get_write_buffer_size() + len(frame) > MAX_PENDING_BYTES:
            self.hub.drop(self, CLOSE_TOO_SLOW, "too much waiting to be sent")
            return
        transport.write(frame)

    def offer(self, text: str, now: float) -> None:
        """Through the ASGI send: hand `text` to the writer task (or, direct, frame it now)."""
        if self.gone:
            return
        if self.transport is not None:
            self.write(text_frame(text), now)
            return
        if self.sending_since is not None and now - self.sending_since > SEND_STALL_SECONDS:
            self.hub.drop(self, CLOSE_TOO_SLOW, "its socket took no message for too long")
            return
        self.pending.append(text)
        self.pending_bytes += len(text)
        if self.pending_bytes > MAX_PENDING_BYTES:
            self.hub.drop(self, CLOSE_TOO_SLOW, "too much waiting to be sent")
            return
        self._wake.set()

    def stop(self) -> None:
        self.gone = True
        self.pending.clear()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    async def _write(self) -> None:
        try:
            while not self.gone:
                if not self.pending:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                text = self.pending[0] if len(self.pending) == 1 else "".join(self.pending)
                self.pending.clear()
                self.pending_bytes = 0
                self.sending_since = self.hub.loop.time()
                await self.send({"type": "websocket.send", "text": text})
                self.sending_since = None
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # The socket is gone (or broken): forget it; the others carry on.
            self.hub.drop(self, None, f"sending failed: {error!r}")


class Hub:
    """Fan-out of pushed fragments to this process's pages: one per event loop (`hub()`).

    One Redis pub/sub connection, subscribed to the channel of each topic that at least one
    page here watches (subscribed on the first page's join, unsubscribed on the last one's
    leave). Fragments are batched (`BATCH_WINDOW_SECONDS`, one window for all topics) and
    written to the topics' clients: no channel layer, no per-message tasks.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.clients: dict[str, set[LiveClient]] = {}
        self._client = redis_clients.subscriber()
        self._pubsub = self._client.pubsub()
        self._prefix = channel_prefix()
        self._subscribed: dict[str, asyncio.Future[None]] = {}  # topic -> confirmed
        self._topics: dict[bytes, str] = {}  # channel -> topic
        # topic -> fragments held until the open window (if any) ends
        self._held: dict[str, list[str]] = {}
        self._window: asyncio.TimerHandle | None = None
        self._reader: asyncio.Task[None] | None = None
        # One (un)subscribe at a time: redis-py's PubSub opens its connection on the first
        # command, and concurrent first commands would each open one (only one is read).
        self._commands = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    def channel(self, topic: str) -> str:
        return f"{self._prefix}__group__{group_name(topic)}"

    async def join(self, topics: list[str], send: Send) -> LiveClient:
        """Register a page for `topics`, subscribed (confirmed by Redis) when this returns.

        Call `start()` on the result once the socket is accepted. Raises RedisError if the
        subscription cannot be made.
        """
        client = LiveClient(self, send, topics)
        new: list[str] = []
        for topic in topics:
            self.clients.setdefault(topic, set()).add(client)
            if topic not in self._subscribed:
                self._subscribed[topic] = self.loop.create_future()
                self._topics[self.channel(topic).encode()] = topic
                new.append(topic)
        confirmations = [self._subscribed[topic] for topic in topics]
        try:
            if new:
                async with self._commands:
                    await self._pubsub.subscribe(*(self.channel(topic) for topic in new))
                if self._reader is None or self._reader.done():
                    self._reader = self.loop.create_task(self._read())
            if confirmations:
                await asyncio.wait_for(asyncio.gather(*map(asyncio.shield, confirmations)), 5)
        except (TimeoutError, redis.RedisError, OSError) as error:
            self.leave(client)
            raise redis.ConnectionError(f"live subscription failed: {error!r}") from error
        except BaseException:  # cancelled (the server is stopping): leave nothing behind
            self.leave(client)
            raise
        return client

    def leave(self, client: LiveClient) -> None:
        """Forget a page (idempotent); unsubscribe the topics no page here watches any more."""
        client.stop()
        empty = []
        for topic in client.topics:
            watching = self.clients.get(topic)
            if watching is None:
                continue
            watching.discard(client)
            if not watching:
                del self.clients[topic]
                empty.append(topic)
        if empty:
            self._background(self._unsubscribe(empty))

    def drop(self, client: LiveClient, code: int | None, why: str) -> None:
        """Stop sending to a page, and close its socket with `code` (None: it is gone)."""
        if client.gone:
            return
        logger.info("dropping live client on %s: %s", ",".join(client.topics), why)
        self.leave(client)
        if code is not None:
            self._background(self._close(client, code))

    def deliver(self, topic: str, html: str) -> None:
        """A fragment for `topic` arrived: send it now, or hold it for the open window."""
        if self._window is not None:
            held = self._held.get(topic)
            if held is None:
                self._held[topic] = [html]
            else:
                held.append(html)
            return
        self._window = self.loop.call_later(BATCH_WINDOW_SECONDS, self._end_window)
        self._flush({topic: [html]})

    def _end_window(self) -> None:
        held, self._held = self._held, {}
        if held:  # more came in the window: send it, and hold the next ones again
            self._window = self.loop.call_later(BATCH_WINDOW_SECONDS, self._end_window)
            self._flush(held)
        else:
            self._window = None

    def _flush(self, held: dict[str, list[str]]) -> None:
        """Send each page what its topics got: one message per page, one frame per topic.

        A page on one topic (most) gets the topic's frame, built once and written as the
        same bytes to every such socket. A page on several topics that got something
        gets their texts joined in one message of its own.
        """
        now = self.loop.time()
        texts: dict[str, str] = {}
        frames: dict[str, bytes] = {}

        def to_one(client: LiveClient, topic: str) -> None:
            if client.transport is None:
                client.offer(texts[topic], now)
                return
            frame = frames.get(topic)
            if frame is None:
                frame = frames[topic] = text_frame(texts[topic])
            client.write(frame, now)

        several: dict[LiveClient, list[str]] = {}
        for topic, fragments in held.items():
            watching = self.clients.get(topic)
            if not watching:
                continue
            texts[topic] = fragments[0] if len(fragments) == 1 else "".join(fragments)
            for client in list(watching):
                if len(client.topics) > 1:
                    several.setdefault(client, []).append(topic)
                else:
                    to_one(client, topic)
        for client, topics in several.items():
            if len(topics) == 1:
                to_one(client, topics[0])
            else:
                client.offer("".join(texts[topic] for topic in topics), now)

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("the live hub lost Redis; pages will reconnect", exc_info=True)
                await self._reset()
                return
            if message is not None:
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        topic = self._topics.get(message["channel"])
        if topic is None:
            return
        if kind == "message":
            try:
                html = decode(message["data"])
            except Exception:
                logger.warning("undecodable live message on %s", topic, exc_info=True)
                return
            self.deliver(topic, html)
        elif kind == "subscribe":
            confirmed = self._subscribed.get(topic)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)

    async def _unsubscribe(self, topics: list[str]) -> None:
        # A page may have joined again since: keep the topics someone watches.
        gone = [topic for topic in topics if topic not in self.clients]
        for topic in gone:
            confirmed = self._subscribed.pop(topic, None)
            if confirmed is not None and not confirmed.done():
                confirmed.cancel()
            self._held.pop(topic, None)
        if gone:
            try:
                async with self._commands:
                    await self._pubsub.unsubscribe(*(self.channel(topic) for topic in gone))
            except (redis.RedisError, OSError):
                logger.warning("could not unsubscribe live topics %s", gone, exc_info=True)

    async def _reset(self) -> None:
        """After losing Redis: close every page (they reconnect and re-sync), start afresh."""
        for clients in list(self.clients.values()):
            for client in list(clients):
                self.drop(client, CLOSE_LIVE_LOST, "the hub lost its Redis connection")
        for confirmed in self._subscribed.values():
            if not confirmed.done():  # pages joining now are refused; they retry
                confirmed.set_exception(redis.ConnectionError("the live hub lost Redis"))
                confirmed.exception()  # seen: no "never retrieved" warning if none waits
        self._subscribed.clear()
        self._topics.clear()
        self._held.clear()
        old = self._pubsub
        self._pubsub = self._client.pubsub()
        try:
            await old.aclose()
        except Exception:
            logger.debug("closing a broken live pub/sub connection failed", exc_info=True)

    @staticmethod
    async def _close(client: LiveClient, code: int) -> None:
        try:
            await asyncio.wait_for(
                client.send({"type": "websocket.close", "code": code}), CLOSE_WAIT_SECONDS
            )
        except Exception:
            logger.debug("closing a dropped live client failed", exc_info=True)
            if client.transport is not None:
                # Its socket takes nothing (the close frame waits behind what it has not
                # read): cut it, so the process holds nothing more for it.
                client.transport.abort()

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coroutine)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """This event loop's hub (uvicorn has one loop per process; each async test its own)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub(loop)
    return found
