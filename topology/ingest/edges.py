"""Spans into per-minute edges, the way the OpenTelemetry Collector's servicegraph connector
derives them (connector/servicegraphconnector in opentelemetry-collector-contrib).

- A CLIENT span and the SERVER span it called are one call: same trace, and the client's
  span id is the server's parent span id. PRODUCER/CONSUMER pair the same way
  (connection type `messaging`). The call failed when either side has status ERROR; its
  latency is the server's duration (the client's when there is no server side).
- Most pairs meet in one request only when one process sent both halves; otherwise the half
  that came first waits in Redis (`PAIR_WAIT`, SIGNALBOX_OTLP_PAIR_WAIT_SECONDS) for the
  other, in one script call per request. A half whose other side never came is counted as
  expired; an expired CLIENT span that names where it went (`peer.service`,
  `server.address`, `net.peer.name`, `db.system`) still makes an edge, to a virtual node
  (or to the catalog's external dependency / service of that slug); `db.system` makes it
  a `database` connection.
- Counts are multiplied by the span's sampling weight (1/p), so rows estimate real traffic.
- Each request's edges go to EdgeMinute in one INSERT ... ON CONFLICT DO UPDATE.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection

from catalog.models import Environment
from controlplane import redis as redis_clients
from topology.ingest.decode import (
    KIND_CLIENT,
    KIND_CONSUMER,
    KIND_PRODUCER,
    Span,
)
from topology.models import LATENCY_BOUNDS_MS, ConnectionType, EdgeMinute, NodeKind

SEP = "\x1f"
PENDING_KEY = "sbx:otlp:pending"  # sorted set: half key -> the time it stops waiting (ms)
HALF_PREFIX = "sbx:otlp:half:"  # + trace id and span id in hex (the script adds it)
STATS_KEY = "sbx:otlp:stats"  # hash of counters across all web processes (the API reads it)
SWEEP_LIMIT = 5000  # expired halves taken per request or sweep

_BUCKETS = len(LATENCY_BOUNDS_MS) + 1
_NO_SEPARATORS = str.maketrans("", "", "\x1e\x1f")
_CLIENT_SIDE = (KIND_CLIENT, KIND_PRODUCER)

# One round trip per request: pair each waiting half with the other side if it is there
# (taking it out), else leave this half waiting; then take out halves whose wait is over.
# KEYS: the pending set and the stats hash. ARGV: wait ms, now ms, sweep limit, received,
# rejected, then the halves as one string of "key RS value RS" (packing 500 arguments
# costs more than the script). A value starts with its side: 'c' (client/producer) or 's'
# (server/consumer).
_PAIR_SCRIPT = """
local wait = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local pending = KEYS[1]
local stats = KEYS[2]
local paired = {}
local halves = ARGV[6]
local at = 1
local i = 0
while at <= #halves do
  local stop = string.find(halves, '\\30', at, true)
  local done = string.find(halves, '\\30', stop + 1, true)
  local key = 'sbx:otlp:half:' .. string.sub(halves, at, stop - 1)
  local mine = string.sub(halves, stop + 1, done - 1)
  at = done + 1
  i = i + 1
  local other = redis.call('GET', key)
  if other and string.sub(other, 1, 1) ~= string.sub(mine, 1, 1) then
    redis.call('DEL', key)
    redis.call('ZREM', pending, key)
    paired[#paired + 1] = i
    paired[#paired + 1] = other
  elseif not other then
    redis.call('SET', key, mine, 'PX', wait * 3)
    redis.call('ZADD', pending, now + wait, key)
  end
end
local expired = {}
local due = redis.call('ZRANGEBYSCORE', pending, '-inf', now, 'LIMIT', 0, limit)
for _, key in ipairs(due) do
  local value = redis.call('GET', key)
  if value then
    expired[#expired + 1] = value
    redis.call('DEL', key)
  end
end
if #due > 0 then
  redis.call('ZREM', pending, unpack(due))
end
if tonumber(ARGV[4]) > 0 then redis.call('HINCRBY', stats, 'spans_received', ARGV[4]) end
if tonumber(ARGV[5]) > 0 then redis.call('HINCRBY', stats, 'spans_rejected', ARGV[5]) end
local waited = #paired / 2
if waited > 0 then redis.call('HINCRBY', stats, 'pairs_after_wait', waited) end
if #expired > 0 then redis.call('HINCRBY', stats, 'unpaired_expired', #expired) end
return {paired, expired}
"""
_script: Any = None


def _pair_script() -> Any:
    global _script
    if _script is None:
        _script = redis_clients.client().register_script(_PAIR_SCRIPT)
    return _script


@dataclass(slots=True)
class Half:
    """One side of a call, as it waits for the other (also its Redis form)."""

    side: str  # "c" client/producer, "s" server/consumer
    service: str
    environment_id: int | None
    start_ns: int
    duration_ms: float
    error: bool
    weight: float
    connection_type: str
    target: str = ""  # client side: where the call went, when the span says (virtual node)
    target_type: str = ""  # the connection type an edge to `target` has

    def encode(self) -> str:
        return SEP.join(
            (
                self.side,
                self.service,
                "" if self.environment_id is None else str(self.environment_id),
                str(self.start_ns),
                repr(self.duration_ms),
                "1" if self.error else "0",
                repr(self.weight),
                self.connection_type,
                self.target,
                self.target_type,
            )
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> Half:
        text = raw.decode() if isinstance(raw, bytes) else raw
        side, service, env, start, dur, err, weight, conn, target, target_type = text.split(SEP)
        return cls(
            side,
            service,
            int(env) if env else None,
            int(start),
            float(dur),
            err == "1",
            float(weight),
            conn,
            target,
            target_type,
        )


def half_of(span: Span, service: str, environment_id: int | None) -> Half:
    conn = ConnectionType.MESSAGING if span.kind in (KIND_PRODUCER, KIND_CONSUMER) else ""
    side = "c" if span.kind in _CLIENT_SIDE else "s"
    target = target_type = ""
    if side == "c":
        attributes = span.attributes
        if attributes:
            for name in ("peer.service", "server.address", "net.peer.name", "db.system"):
                value = attributes.get(name)
                if isinstance(value, str) and value:
                    # Our separators cannot be in it (the value is anyone's text).
                    target = value.translate(_NO_SEPARATORS)[:200]
                    break
            target_type = ConnectionType.DATABASE if attributes.get("db.system") else conn
    return Half(
        side,
        service,
        environment_id,
        span.start_ns,
        span.duration_ms,
        span.error,
        span.weight,
        str(conn),
        target,
        str(target_type),
    )


@dataclass
class Batch:
    """Edges of one request (and whatever expired meanwhile), summed per row key."""

    rows: dict[tuple[Any, ...], list[Any]] = field(default_factory=dict)
    paired: int = 0
    virtual: int = 0
    expired: int = 0
    _minutes: dict[int, datetime] = field(default_factory=dict)

    def _minute(self, start_ns: int) -> datetime:
        minute = start_ns // 60_000_000_000
        found = self._minutes.get(minute)
        if found is None:
            found = self._minutes[minute] = datetime.fromtimestamp(minute * 60, tz=UTC)
        return found

    def add(
        self,
        client: Half,
        server_name: str,
        server_kind: str,
        connection_type: str,
        environment_id: int | None,
        latency_ms: float,
        failed: bool,
        weight: float,
    ) -> None:
        key = (
            self._minute(client.start_ns),
            environment_id,
            client.service,
            server_name,
            connection_type,
        )
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [server_kind, 0.0, 0.0, 0.0, [0.0] * _BUCKETS]
        row[1] += weight
        if failed:
            row[2] += weight
        row[3] += latency_ms * weight
        row[4][bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)] += weight

    def pair(self, client: Half, server: Half) -> None:
        self.paired += 1
        self.add(
            client,
            server.service,
            NodeKind.SERVICE,
            client.connection_type or server.connection_type,
            client.environment_id if client.environment_id is not None else server.environment_id,
            server.duration_ms,
            client.error or server.error,
            max(client.weight, server.weight),
        )

    def expire(self, half: Half, services: Iterable[str], externals: Iterable[str]) -> None:
        self.expired += 1
        if half.side != "c" or not half.target:
            return
        self.virtual += 1
        if half.target in externals:
            kind = NodeKind.EXTERNAL
        elif half.target in services:
            kind = NodeKind.SERVICE
        else:
            kind = NodeKind.VIRTUAL
        self.add(
            half,
            half.target,
            kind,
            half.target_type,
            half.environment_id,
            half.duration_ms,
            half.error,
            half.weight,
        )


def match(
    halves: Iterable[tuple[bytes, Half]],
    batch: Batch,
    *,
    received: int = 0,
    rejected: int = 0,
    lookup: tuple[Iterable[str], Iterable[str]] = ((), ()),
) -> None:
    """Pair the halves with each other, then with those waiting in Redis; the rest wait.

    Also takes out the halves whose wait is over (they become virtual edges or are only
    counted) and adds the request's counts to the shared stats."""
    clients: dict[bytes, Half] = {}
    servers: dict[bytes, Half] = {}
    for key, half in halves:
        if half.side == "c":
            other = servers.pop(key, None)
            if other is not None:
                batch.pair(half, other)
            else:
                clients[key] = half
        else:
            other = clients.pop(key, None)
            if other is not None:
                batch.pair(other, half)
            else:
                servers[key] = half
    waiting = [*clients.items(), *servers.items()]
    packed = "".join(f"{key.hex()}\x1e{half.encode()}\x1e" for key, half in waiting)
    values: list[Any] = [
        settings.SIGNALBOX_OTLP_PAIR_WAIT_SECONDS * 1000,
        int(time.time() * 1000),
        SWEEP_LIMIT,
        received,
        rejected,
        packed,
    ]
    paired, expired = _pair_script()(keys=[PENDING_KEY, STATS_KEY], args=values)
    for i in range(0, len(paired), 2):
        mine = waiting[int(paired[i]) - 1][1]
        other = Half.decode(paired[i + 1])
        if mine.side == "c":
            batch.pair(mine, other)
        else:
            batch.pair(other, mine)
    services, externals = lookup
    for raw in expired:
        batch.expire(Half.decode(raw), services, externals)


# A fixed text with one array per column (unnest), so the statement is the same whatever
# the number of rows: psycopg converts it once and PostgreSQL plans it once.
_UPSERT = """
INSERT INTO topology_edgeminute AS t
    (minute, environment_id, client, server, server_kind, connection_type,
     calls, failures, latency_sum_ms, latency_buckets)
SELECT minute, environment_id, client, server, server_kind, connection_type,
       calls, failures, latency_sum_ms, buckets::bigint[]
FROM unnest(
    %s::timestamptz[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[],
    %s::bigint[], %s::bigint[], %s::float8[], %s::text[]
) AS v(minute, environment_id, client, server, server_kind, connection_type,
       calls, failures, latency_sum_ms, buckets)
-- A half that waited in the pairing store while its environment was deleted (and maybe
-- made again under a new id) is dropped, not allowed to fail every batch until it expires.
WHERE v.environment_id IS NULL
   OR EXISTS (SELECT 1 FROM catalog_environment e WHERE e.id = v.environment_id)
ON CONFLICT ON CONSTRAINT topology_edge_minute_unique DO UPDATE SET
    server_kind = EXCLUDED.server_kind,
    calls = t.calls + EXCLUDED.calls,
    failures = t.failures + EXCLUDED.failures,
    latency_sum_ms = t.latency_sum_ms + EXCLUDED.latency_sum_ms,
    latency_buckets = ARRAY(
        SELECT coalesce(a, 0) + coalesce(b, 0)
        FROM unnest(t.latency_buckets, EXCLUDED.latency_buckets) WITH ORDINALITY AS u(a, b, i)
        ORDER BY i
    )
"""


def flush(batch: Batch) -> int:
    """The batch's rows into EdgeMinute in one statement; returns the rows written."""
    if not batch.rows:
        return 0
    columns: list[list[Any]] = [[] for _ in range(10)]
    # A fixed order, so two requests adding to the same rows lock them in the same order.
    for key in sorted(batch.rows, key=lambda k: (k[0], k[1] or 0, k[2], k[3], k[4])):
        server_kind, calls, failures, latency_sum, buckets = batch.rows[key]
        minute, environment_id, client, server, connection_type = key
        row = (
            minute,
            environment_id,
            client,
            server,
            server_kind,
            connection_type,
            round(calls),
            round(failures),
            latency_sum,
            "{" + ",".join(str(round(b)) for b in buckets) + "}",
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, columns)
        return int(cursor.rowcount)


assert EdgeMinute._meta.db_table == "topology_edgeminute"  # the tables the SQL names
assert Environment._meta.db_table == "catalog_environment"
