"""The Celery broker's transport: kombu's Redis transport, made to ride out a Redis restart.

What kills a worker when Redis goes away (kombu 5.7, Celery 5.7; the family of
celery/kombu#582 and celery/celery#4652): with `acks_late`, a task that is running holds an
unacknowledged message. On the lost connection Celery's consumer first *collects* the
connection: closing its channel reads the BRPOP that was in flight, that read raises
ConnectionError, the close stops half-way and the channel stays open, and then the
connection's transport is cut loose (`transport.client = None`). Celery then closes the
connection again; this time the channel gets as far as restoring the unacknowledged message,
which needs a Redis client, so it builds a pool from `transport.client.hostname`:
`AttributeError: 'NoneType' object has no attribute 'hostname'`, which is no connection
error, so the worker stops ("Unrecoverable error"). The same happens when the task finishes
after the reconnect and its late ack goes to the old channel.

This channel remembers where Redis is from the moment it is made, so closing it, restoring
and acknowledging on it never need the transport's client; and it finishes closing when the
BRPOP it was waiting on died with the connection. `CELERY_BROKER_TRANSPORT` names it
(controlplane/settings.py) for `redis://` brokers; docs/operations.md says what an outage does.

The app's connections (`AMQP` below, named in controlplane/celery.py) also retry a lost
broker every few seconds instead of backing off to 30 s, so a worker is back within
`RECONNECT_MAX_SECONDS` of Redis coming back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from queue import Empty
from typing import Any

import kombu
from celery.app.amqp import AMQP as CeleryAMQP
from kombu.transport import redis as kombu_redis

# Seconds between a worker's attempts to reach a lost broker: 1, 2, 3, then every 3. kombu's
# default (2, 4, ... up to 30) left a worker idle for up to 30 s after Redis was back; one
# failed attempt costs a refused TCP connection and a log line.
RECONNECT_START_SECONDS = 1
RECONNECT_STEP_SECONDS = 1
RECONNECT_MAX_SECONDS = 3


class Channel(kombu_redis.Channel):
    """kombu's Redis channel that can still be closed, restore and ack once its connection
    is gone."""

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        # The first call is in kombu's __init__ (it pings Redis), while the transport still
        # has its client; every later pool this channel makes (after a reconnect, or to
        # restore unacked messages while closing) uses the same parameters.
        key = "_signalbox_async_params" if asynchronous else "_signalbox_params"
        params: dict[str, Any] | None = self.__dict__.get(key)
        if params is None:
            params = super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]
            self.__dict__[key] = params
        return dict(params)

    def close(self) -> None:
        # kombu's Channel is not in celery-types' stubs beyond its name, hence the ignores.
        if self._in_poll:  # type: ignore[attr-defined]
            # The reply of the BRPOP in flight: none comes from a connection that died.
            # kombu's own close lets that ConnectionError out and stops half-way.
            with contextlib.suppress(Empty, *self.connection_errors):  # type: ignore[attr-defined]
                self._brpop_read()  # type: ignore[attr-defined]
        super().close()


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with the channel above (`redis://` and `rediss://` URLs)."""

    Channel = Channel


class Connection(kombu.Connection):
    """A broker connection whose reconnect attempts stay a few seconds apart."""

    def ensure_connection(
        self,
        errback: Callable[[Exception, float], None] | None = None,
        max_retries: int | None = None,
        interval_start: int = RECONNECT_START_SECONDS,
        interval_step: int = RECONNECT_STEP_SECONDS,
        interval_max: int = RECONNECT_MAX_SECONDS,
        callback: Callable[[], None] | None = None,
        reraise_as_library_errors: bool = True,
        timeout: int | None = None,
    ) -> Connection:
        super().ensure_connection(
            errback,
            max_retries,  # type: ignore[arg-type]  # None: forever, as kombu documents
            interval_start,
            interval_step,
            interval_max,
            callback,
            reraise_as_library_errors,
            timeout,
        )
        return self


class AMQP(CeleryAMQP):
    """Celery's messaging helpers, making their broker connections with `Connection`."""

    Connection = Connection
