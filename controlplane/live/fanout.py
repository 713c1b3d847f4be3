"""The hub: fan-out of pushed fragments to the pages of one web process.

One Redis pub/sub connection per event loop, subscribed to the topics its pages watch; a
topic's fragments are batched into one websocket message per `BATCH_WINDOW_SECONDS`
(leading edge: the first after a quiet spell goes at once) and written by a task per page.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import redis

from controlplane import redis as redis_clients
from controlplane.live.wire import channel_prefix, decode, group_name

logger = logging.getLogger(__name__)

# The hub sends a topic's first fragment after a quiet spell at once, and what arrives in the
# next BATCH_WINDOW_SECONDS as one websocket message at the window's end (and so on while
# fragments keep coming). At 100 events/s to 500 pages that is ~10 messages per page per
# second instead of 100: the web process's cost is per websocket message, not per byte
# (bench/live_fanout), and an event still shows within the window.
BATCH_WINDOW_SECONDS = 0.1
# A page whose socket has not taken a message for this long, or has this much waiting, is
# closed (1013, "try again later": the page reconnects and re-syncs): one stuck client must
# neither hold the others back nor make the process buffer without bound.
SEND_STALL_SECONDS = 5.0
MAX_PENDING_BYTES = 1_000_000

CLOSE_TOO_SLOW = 1013  # retried by the page (htmx's ws extension retries 1011-1013)
CLOSE_LIVE_LOST = 1012  # the hub lost Redis: reconnect (and re-sync: pushes may be lost)


Send = Callable[[dict[str, Any]], Awaitable[None]]


class LiveClient:
    """One page's websocket as the hub sees it: its topics and what is waiting to be sent.

    A writer task per client sends what is waiting, joined into one message, so one slow
    socket only ever holds up itself.
    """

    def __init__(self, hub: Hub, send: Send, topics: list[str]) -> None:
        self.hub = hub
        self.send = send
        self.topics = topics
        self.pending: list[str] = []
        self.pending_bytes = 0
        self.sending_since: float | None = None
        self.gone = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin sending (once the socket is accepted); anything already waiting goes first."""
        if self._task is None and not self.gone:
            self._task = asyncio.get_running_loop().create_task(self._write())

    def offer(self, text: str, now: float) -> None:
        if self.gone:
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
    leave). Each fragment is batched per topic (`BATCH_WINDOW_SECONDS`) and handed to the
    topic's clients, whose writer tasks send it: no channel layer, no per-message tasks.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.clients: dict[str, set[LiveClient]] = {}
        self._client = redis_clients.subscriber()
        self._pubsub = self._client.pubsub()
        self._prefix = channel_prefix()
        self._subscribed: dict[str, asyncio.Future[None]] = {}  # topic -> confirmed
        self._topics: dict[bytes, str] = {}  # channel -> topic
        self._windows: dict[str, list[str]] = {}  # topic -> fragments held until the window ends
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
        held = self._windows.get(topic)
        if held is not None:
            held.append(html)
            return
        self._windows[topic] = []
        self.loop.call_later(BATCH_WINDOW_SECONDS, self._end_window, topic)
        self._send(topic, html)

    def _end_window(self, topic: str) -> None:
        held = self._windows.pop(topic, None)
        if held:  # more came in the window: send them as one, and hold the next ones again
            self._windows[topic] = []
            self.loop.call_later(BATCH_WINDOW_SECONDS, self._end_window, topic)
            self._send(topic, "".join(held))

    def _send(self, topic: str, text: str) -> None:
        now = self.loop.time()
        for client in list(self.clients.get(topic, ())):
            client.offer(text, now)

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
            self._windows.pop(topic, None)
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
        self._windows.clear()
        old = self._pubsub
        self._pubsub = self._client.pubsub()
        try:
            await old.aclose()
        except Exception:
            logger.debug("closing a broken live pub/sub connection failed", exc_info=True)

    @staticmethod
    async def _close(client: LiveClient, code: int) -> None:
        try:
            await asyncio.wait_for(client.send({"type": "websocket.close", "code": code}), 2)
        except Exception:
            logger.debug("closing a dropped live client failed", exc_info=True)

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

