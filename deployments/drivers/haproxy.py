"""HAProxy through its runtime API (unix socket or TCP): server weights, drain/ready, show stat."""

from __future__ import annotations

import csv
import io
import ipaddress
import re
import socket
from collections.abc import Collection
from dataclasses import dataclass
from functools import partial
from typing import Any

from deployments.drivers.base import (
    Applied,
    Difference,
    Driver,
    DriverError,
    Member,
    Observed,
    Pool,
    Split,
    Target,
    TargetStats,
    TransientError,
    canary_share,
    split_weights,
)

# srv_admin_state bits (haproxy src/server.h): any maintenance or drain means no new traffic.
ADMIN_MAINT = 0x01 | 0x02 | 0x04 | 0x20 | 0x40
ADMIN_DRAIN = 0x08 | 0x10
SERVER_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]")
MAX_WEIGHT = 256  # HAProxy's largest server weight


class RuntimeAPI:
    """One command per connection, as HAProxy's non-interactive mode expects."""

    def __init__(self, connection: dict[str, Any], timeout: float) -> None:
        self.socket_path = connection.get("socket")
        self.host = connection.get("host")
        self.port = int(connection.get("port") or 0)
        if not self.socket_path and not (self.host and self.port):
            raise DriverError(
                'haproxy connection needs {"socket": PATH} or {"host": HOST, "port": PORT}'
            )
        self.timeout = timeout

    def execute(self, command: str) -> str:
        try:
            if self.socket_path:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(self.socket_path)
            else:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            where = self.socket_path or f"{self.host}:{self.port}"
            raise TransientError(f"cannot reach the HAProxy runtime API at {where}: {exc}") from exc
        with sock:
            try:
                sock.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            except OSError as exc:
                raise TransientError(f"HAProxy runtime API {command.split()[0]!r}: {exc}") from exc
        return b"".join(chunks).decode(errors="replace")

    def run(self, command: str, ok: tuple[str, ...] = ()) -> str:
        """Execute a command that answers nothing (or one of `ok`) on success."""
        answer = self.execute(command).strip()
        if answer and not answer.startswith(ok or ("\0",)):
            raise DriverError(f"HAProxy refused {command!r}: {answer}")
        return answer


@dataclass
class Server:
    name: str
    host: str
    port: int
    weight: int
    admin_state: int
    op_state: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def takes_traffic(self) -> bool:
        return not self.admin_state & (ADMIN_MAINT | ADMIN_DRAIN)


class HAProxyDriver(Driver):
    """Instances are servers of one backend, matched by IP:port; weights split the traffic."""

    @property
    def api(self) -> RuntimeAPI:
        return RuntimeAPI(self.connection, self.timeout)

    @property
    def backend(self) -> str:
        backend = self.route.get("backend")
        if not backend:
            raise DriverError("this route names no HAProxy backend")
        return str(backend)

    def command(self, operation: str, text: str, ok: tuple[str, ...] = ()) -> str:
        """Run one command that answers nothing on success, with retries and the breaker."""
        return self.call(operation, lambda: self.api.run(text, ok))

    def servers(self, backend: str | None = None) -> list[Server]:
        backend = backend or self.backend
        text = self.call(
            "show servers state", lambda: self.api.execute(f"show servers state {backend}")
        )
        if "Can't find backend" in text:
            raise DriverError(f"HAProxy has no backend {backend!r}")
        return parse_servers_state(text).get(backend, [])

    def _ensure(self, targets: tuple[Target, ...], backend: str) -> list[Server]:
        servers = self.servers(backend)
        known = {s.address for s in servers}
        missing = [t for t in targets if t.address not in known]
        if missing and not self.route.get("add_missing_servers", True):
            names = ", ".join(t.address for t in missing)
            raise DriverError(
                f"backend {backend} has no server for {names}; add them to the config"
            )
        for target in missing:
            self._add_server(backend, target, 0)
        return self.servers(backend) if missing else servers

    def _add_server(self, backend: str, target: Target, weight: int) -> None:
        """`add server` (HAProxy 2.4+) for an instance the backend does not list, ready."""
        if not self.route.get("add_missing_servers", True):
            raise DriverError(
                f"backend {backend} has no server for {target.address}; add it to the config"
            )
        try:
            ipaddress.ip_address(target.host)
        except ValueError:
            raise DriverError(
                f"cannot add {target.address} to {backend}: HAProxy needs an IP address"
            ) from None
        name = server_name(target)
        self.command(
            "add server",
            f"add server {backend}/{name} {target.address} weight {weight}",
            ok=("New server registered",),
        )
        self.command("enable server", f"enable server {backend}/{name}")

    def _set(self, split: Split, backend: str) -> dict[str, int]:
        stable_weight, canary_weight = split_weights(
            split.canary_percent, len(split.stable), len(split.canary), MAX_WEIGHT
        )
        stable = {t.address for t in split.stable}
        canary = {t.address for t in split.canary}
        wanted: dict[str, int] = {}
        commands: list[str] = []
        for server in self._ensure(split.stable + split.canary, backend):
            # Servers of neither side (an older version left behind) get no traffic.
            weight = canary_weight if server.address in canary else 0
            weight = stable_weight if server.address in stable else weight
            wanted[server.name] = weight
            if server.weight != weight:
                commands.append(f"set weight {backend}/{server.name} {weight}")
            if weight and server.admin_state & ADMIN_DRAIN:
                commands.append(f"set server {backend}/{server.name} state ready")
        if commands:
            # One connection for all of them: the runtime API runs commands separated by ';'
            # in order and answers nothing for each that succeeds (anything else is refused).
            self.command("set weight", "; ".join(commands))
        return wanted

    def apply(self, split: Split, state: dict[str, Any]) -> Applied:
        wanted = self._set(split, self.backend)
        applied = self.read(split, state)
        got = applied.weights
        wrong = {name: w for name, w in wanted.items() if got.get(name, {}).get("weight") != w}
        if wrong:
            raise DriverError(
                f"weights read back from {self.backend} differ from those set: {wrong}"
            )
        preview = self.route.get("preview_backend")
        if preview and split.canary:
            self._set(Split(100, split.stable, split.canary), str(preview))
        elif preview:
            # No new instances (a rollback after they left): the preview sends nobody anywhere.
            for server in self.servers(str(preview)):
                if server.weight:
                    self.command("set weight", f"set weight {preview}/{server.name} 0")
        return applied

    def read(self, split: Split, state: dict[str, Any]) -> Applied:
        canary = {t.address for t in split.canary}
        servers = self.servers()
        effective = {s.name: s.weight if s.takes_traffic else 0 for s in servers}
        share = canary_share(
            [effective[s.name] for s in servers if s.address not in canary],
            [effective[s.name] for s in servers if s.address in canary],
        )
        weights = {
            s.name: {"address": s.address, "weight": s.weight, "effective": effective[s.name]}
            for s in servers
        }
        return Applied(canary_percent=share, weights=weights)

    def _set_state(self, targets: tuple[Target, ...], new_state: str) -> None:
        addresses = {t.address for t in targets}
        for server in self.servers():
            if server.address in addresses:
                self.command(
                    f"set server state {new_state}",
                    f"set server {self.backend}/{server.name} state {new_state}",
                )

    def drain(self, targets: tuple[Target, ...], state: dict[str, Any]) -> None:
        self._set_state(targets, "drain")

    def ready(self, targets: tuple[Target, ...], state: dict[str, Any]) -> None:
        self._set_state(targets, "ready")

    def forget(self, targets: tuple[Target, ...], state: dict[str, Any]) -> None:
        """Servers added at run time are deleted (maintenance first, as HAProxy requires);
        servers of the configuration file stay, in maintenance, for the next instance."""
        addresses = {t.address for t in targets}
        backend = self.backend
        for server in self.servers(backend):
            if server.address not in addresses:
                continue
            name = f"{backend}/{server.name}"
            self.command("set server state maint", f"set server {name} state maint")
            answer = self.call("del server", partial(self.api.execute, f"del server {name}"))
            # A server of the configuration file cannot be deleted: it stays in maintenance.
            kept = "added at runtime" in answer or "dynamic" in answer
            if answer.strip() and "Server deleted" not in answer and not kept:
                raise DriverError(f"HAProxy refused 'del server {name}': {answer.strip()}")

    def stats(self, targets: tuple[Target, ...], state: dict[str, Any]) -> dict[str, TargetStats]:
        """Per target, what the route's backend and its preview backend (if any) saw, summed:
        during a blue/green preview the new side's only requests come through the preview."""
        # "-1 4 -1": every proxy, servers only.
        text = self.call("show stat", lambda: self.api.execute("show stat -1 4 -1"))
        wanted = {t.address for t in targets}
        backends = [self.backend, str(self.route.get("preview_backend") or "")]
        found: dict[str, TargetStats] = {}
        for backend in filter(None, backends):
            for row in parse_show_stat(text, backend):
                if row.address in wanted:
                    seen = found.get(row.address)
                    found[row.address] = row if seen is None else _sum(seen, row)
        return found

    # -- reconciling -----------------------------------------------------------------------

    def wanted_pools(
        self, split: Split | None, drained: tuple[Target, ...], state: dict[str, Any]
    ) -> dict[str, Pool]:
        """The backend as `apply` leaves it (every other server at weight 0), the preview
        backend with only the new side, and `drained` servers drained."""
        pools: dict[str, Pool] = {}
        if split is not None:
            stable_weight, canary_weight = split_weights(
                split.canary_percent, len(split.stable), len(split.canary), MAX_WEIGHT
            )
            members = {t.address: Member(weight=stable_weight) for t in split.stable}
            members |= {t.address: Member(weight=canary_weight) for t in split.canary}
            pools[self.backend] = Pool(members)
            preview = self.route.get("preview_backend")
            if preview:
                weight = (
                    split_weights(100, len(split.stable), len(split.canary), MAX_WEIGHT)[1]
                    if split.canary
                    else 0
                )
                pools[str(preview)] = Pool({t.address: Member(weight=weight) for t in split.canary})
        if drained:
            pool = pools.setdefault(self.backend, Pool(exclusive=False))
            pool.members |= {t.address: Member(serving=False) for t in drained}
        return pools

    def observe(self, pools: Collection[str]) -> Observed:
        """Every backend's servers, from one `show servers state`."""
        text = self.call("show servers state", lambda: self.api.execute("show servers state"))
        return {
            backend: {
                s.address: Member(weight=s.weight, serving=s.takes_traffic, name=s.name)
                for s in servers
            }
            for backend, servers in parse_servers_state(text).items()
        }

    def repair(self, differences: list[Difference], wanted: dict[str, Pool]) -> None:
        for difference in differences:
            backend, want, have = difference.pool, difference.wanted, difference.observed
            if have is None:
                host, _, port = difference.member.rpartition(":")
                target = Target(host, int(port))
                self._add_server(backend, target, want.weight or 0)
                have = Member(weight=want.weight or 0, name=server_name(target))
            if want.weight is not None and have.weight != want.weight:
                self.command("set weight", f"set weight {backend}/{have.name} {want.weight}")
            if want.serving != have.serving:
                state = "ready" if want.serving else "drain"
                self.command(
                    f"set server state {state}", f"set server {backend}/{have.name} state {state}"
                )


def server_name(target: Target) -> str:
    """The name Signalbox gives a server it adds: sbx-IP-PORT."""
    return SERVER_NAME_RE.sub("_", f"sbx-{target.host}-{target.port}")


def parse_servers_state(text: str) -> dict[str, list[Server]]:
    """`show servers state` (one backend or all) as servers by backend name."""
    found: dict[str, list[Server]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 19 or line.startswith("#"):
            continue
        found.setdefault(fields[1], []).append(
            Server(
                name=fields[3],
                host=fields[4],
                port=int(fields[18]),
                weight=int(fields[7]),
                admin_state=int(fields[6]),
                op_state=int(fields[5]),
            )
        )
    return found


def _sum(a: TargetStats, b: TargetStats) -> TargetStats:
    """One target's counters in two backends as one: counts add, response times weigh by
    responses."""
    times = [(s.rtime_ms, s.responses) for s in (a, b) if s.rtime_ms is not None]
    weight = sum(n for _, n in times)
    rtime = sum(t * n for t, n in times) / weight if weight else (times[0][0] if times else None)
    rates = [s.request_rate for s in (a, b) if s.request_rate is not None]
    return TargetStats(
        address=a.address,
        sessions=a.sessions + b.sessions,
        responses=a.responses + b.responses,
        responses_2xx=a.responses_2xx + b.responses_2xx,
        responses_5xx=a.responses_5xx + b.responses_5xx,
        rtime_ms=rtime,
        status=a.status or b.status,
        request_rate=sum(rates) if rates else None,
    )


def parse_show_stat(text: str, backend: str) -> list[TargetStats]:
    """Server rows of `show stat` CSV for one backend (the header line starts with '# ')."""
    lines = text.lstrip("# ").splitlines()
    rows = []
    for row in csv.DictReader(io.StringIO("\n".join(line for line in lines if line))):
        if row.get("pxname") != backend or row.get("svname") in ("FRONTEND", "BACKEND"):
            continue
        responses = sum(
            _int(row.get(k))
            for k in ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other")
        )
        rtime = row.get("rtime")
        rate = row.get("rate")
        rows.append(
            TargetStats(
                address=row.get("addr") or "",
                sessions=_int(row.get("scur")),
                responses=responses,
                responses_2xx=_int(row.get("hrsp_2xx")),
                responses_5xx=_int(row.get("hrsp_5xx")),
                rtime_ms=float(rtime) if rtime not in (None, "") else None,
                status=row.get("status") or "",
                request_rate=float(rate) if rate not in (None, "") else None,
            )
        )
    return rows


def _int(value: str | None) -> int:
    return int(value) if value not in (None, "") else 0
