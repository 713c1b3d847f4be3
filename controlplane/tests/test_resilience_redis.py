"""Redis restarted in the middle of a rollout, with a notification being sent: the whole
stack (web, a worker as the Procfile runs it, beat) rides it out with no process restarted
by hand, and nothing is lost.

Redis is a redis-server of the test's own, without persistence (a restart empties it: every
queued message is gone) and down for 8 s; bench/resilience_restart.py measures the 20 s
case. Before controlplane/broker.py the worker died at once ("Unrecoverable error:
AttributeError: 'NoneType' object has no attribute 'hostname'"), with the notification's
task still running.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from alerts.choices import ChannelKind, IncidentState, RuleKind, Severity
from alerts.models import Channel, Incident, Route, Rule
from alerts.tests.conftest import Receiver, serving
from catalog.models import ApiToken, Instance
from controlplane.models import Event
from controlplane.tests.resilience import (
    OUTAGE_SECONDS,
    OwnRedis,
    Stack,
    json_of,
    record,
    wait_for,
)
from deployments.choices import RolloutState
from deployments.models import Rollout
from deployments.tests.conftest import VersionServers, make_route, start_haproxy
from health import services
from health.choices import CheckStatus
from health.models import CheckSpec, InstanceCheck

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Short leases, so that work whose queued message Redis lost on restart is claimed again
# within seconds (in production: 30 s for rollouts, 60 s for notifications).
ROLLOUT_LEASE_SECONDS = 4
ALERTS_LEASE_SECONDS = 15  # the minimum: the HTTP timeout (10 s) + 5 s


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stack(tmp_path: Path, own_redis: OwnRedis, transactional_db: None) -> Iterator[Stack]:
    found = Stack(
        tmp_path,
        REDIS_URL=own_redis.url,
        CELERY_BROKER_URL=own_redis.url,
        SIGNALBOX_ROLLOUT_LEASE_SECONDS=str(ROLLOUT_LEASE_SECONDS),
        ALERTS_LEASE_SECONDS=str(ALERTS_LEASE_SECONDS),
    )
    yield found
    found.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as recv:
        yield recv


@pytest.fixture
def servers() -> Iterator[VersionServers]:
    found = VersionServers()
    yield found
    found.close()


def test_the_stack_rides_out_a_redis_restart_mid_rollout_and_loses_nothing(
    world: Any,
    stack: Stack,
    own_redis: OwnRedis,
    servers: VersionServers,
    receiver: Receiver,
    session_cookie: Any,
    tmp_path: Path,
) -> None:
    # given checkout (1.0, 1.0 and a 2.0 canary) behind a real HAProxy
    checkout = [servers.start("1.0"), servers.start("1.0"), servers.start("2.0")]
    proxy = start_haproxy(tmp_path, {"be_checkout": checkout})
    try:
        make_route(world, proxy.connection)
        for server in checkout:
            Instance.objects.create(
                service=world.service, environment=world.production, host="127.0.0.1",
                port=server.port, version=server.version,
            )  # fmt: skip
        # and the indexer probed every second, paging its team's webhook when it is down
        indexer = servers.start("1.0")
        CheckSpec.objects.update_or_create(
            service=world.other_service,
            defaults={"path": "/", "interval_seconds": 1, "timeout_seconds": 1,
                      "failure_threshold": 1, "success_threshold": 1},
        )  # fmt: skip
        indexer_instance = Instance.objects.create(
            service=world.other_service, environment=world.production, host="127.0.0.1",
            port=indexer.port, version="1.0",
        )  # fmt: skip
        services.ensure_checks(indexer_instance)
        page_on_down(world, receiver)
        # and Signalbox's processes on a Redis of the test's own
        stack.start_web()
        # (with Celery's own defaults, so a worker started without the Procfile's and
        # docker-compose's flags survives too: test_resilience_supervisor.py runs those)
        stack.start_worker()
        stack.start_beat()
        worker_pid = stack.pid("worker")
        wait_for(lambda: stack.get("/readyz")[0] == 200, 20, "the web process to be ready")
        live = LivePage(stack, session_cookie(world.owner))

        # when a rollout is paused half-way (its pause outlasts the outage)
        rollout_id = start_rollout(stack, world, pause_seconds=int(OUTAGE_SECONDS) + 2)
        wait_for(
            lambda: Rollout.objects.filter(pk=rollout_id, applied_weight=50).exists(),
            30, "the rollout to reach 50 %",
        )  # fmt: skip
        # and the indexer goes down, its page is being sent (the webhook takes 4 s to answer)
        receiver.delay = 4.0
        indexer.failing = True
        wait_for(lambda: receiver.to("/hook"), 30, "the webhook to be called")
        # and Redis stops while that task is still running
        own_redis.stop()
        stopped_at = time.monotonic()
        indexer.failing = False  # it recovers during the outage; only probes can tell
        readiness_while_down = wait_for(
            lambda: (r := stack.get("/readyz"))[0] == 503 and r[1], 5, "/readyz to fail"
        )
        live.closed_by_server(timeout=10)
        readiness_failed_after = time.monotonic() - stopped_at
        while time.monotonic() - stopped_at < OUTAGE_SECONDS:
            assert stack.alive("worker"), "the worker died:\n" + stack.log("worker")[-3000:]
            time.sleep(0.5)
        own_redis.start()
        back_at, back_at_wall = time.monotonic(), time.time()

        # then /readyz said why while Redis was down, and is ready again without a restart
        assert isinstance(readiness_while_down, bytes)
        body = json_of(readiness_while_down)
        assert body["status"] == "fail"
        assert body["output"] == "down: redis, broker"
        assert body["checks"]["postgresql:responseTime"][0]["status"] == "pass"
        wait_for(lambda: stack.get("/readyz")[0] == 200, 10, "/readyz to pass again")
        ready_after = time.monotonic() - back_at
        wait_for(lambda: "Connected to" in stack.log("worker").rsplit("lost", 1)[-1], 20,
                 "the worker to reconnect")  # fmt: skip
        worker_after = time.monotonic() - back_at
        # and the same worker process carried on: the rollout finished, each step once
        wait_for(
            lambda: Rollout.objects.get(pk=rollout_id).is_terminal, 40, "the rollout to finish"
        )
        rollout_after = time.monotonic() - back_at
        final = Rollout.objects.get(pk=rollout_id)
        assert final.state == RolloutState.SUCCEEDED, final.message
        assert final.applied_weight == 100
        done = list(final.step_runs.filter(outcome="done").values_list("index", "kind"))
        assert len(done) == len(set(done)), done
        assert [kind for _, kind in sorted(done)][:3] == ["set_weight", "pause", "set_weight"]
        assert proxy.traffic(6) == {"2.0": 6}
        # and probes went on: the indexer's recovery was seen and its resolve sent. A batch
        # whose message Redis lost is probed once its lease runs out (health/scheduler.py:
        # LEASE_SECONDS, 71 s), so this may take that long after the restart.
        wait_for(
            lambda: InstanceCheck.objects.filter(
                instance=indexer_instance, status=CheckStatus.PASS
            ).exists(),
            80, "the probes to see the indexer healthy again",
        )  # fmt: skip
        probes_after = time.monotonic() - back_at
        wait_for(
            lambda: Incident.objects.filter(state=IncidentState.RESOLVED).exists(),
            30, "the incident to resolve",
        )  # fmt: skip
        wait_for(lambda: len(receiver.to("/hook")) >= 2, 40, "the resolve to be sent")
        time.sleep(2)  # nothing else arrives: no page went twice
        sent = [json.loads(r.body) for r in receiver.to("/hook")]
        assert len(sent) == 2, sent
        notified_after = receiver.to("/hook")[1].at - back_at_wall
        # and the live page reconnected: a change made after the restart reaches it
        live.reconnect(timeout=15)
        _, token = ApiToken.issue(team=world.team, name="editor", scopes=["write", "read"])
        response = httpx.patch(
            f"{stack.web_url}/api/v1/services/{world.service.slug}",
            headers={"Authorization": f"Bearer {token}"},
            json={"description": "changed after the restart"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        latest = Event.objects.filter(service=world.service).latest("pk")
        assert f'id="event-{latest.pk}"' in live.next_message(timeout=10)
        record(
            "redis_restart",
            outage_seconds=OUTAGE_SECONDS,
            readyz_503_within_s=round(readiness_failed_after, 2),
            readyz_200_after_s=round(ready_after, 2),
            worker_reconnected_after_s=round(worker_after, 2),
            rollout_finished_after_s=round(rollout_after, 2),
            probes_resumed_after_s=round(probes_after, 2),
            resolve_sent_after_s=round(notified_after, 2),
            steps_lost=3 - len(done[:3]),
            notifications_lost=2 - len(sent),
            worker_restarts=0,
        )
        assert stack.alive("worker") and stack.pid("worker") == worker_pid
        assert "Unrecoverable error" not in stack.log("worker")
        assert time.monotonic() - back_at < 120
    finally:
        proxy.process.terminate()
        proxy.process.wait(5)


def page_on_down(world: Any, receiver: Receiver) -> None:
    """The indexer's team pages its webhook as soon as the indexer is down."""
    team = world.other_team
    Rule.objects.filter(team=team).update(enabled=False)
    hook = Channel.objects.create(
        team=team, name="hook", kind=ChannelKind.WEBHOOK,
        secret="webhook-signing-secret-0123456789", url=receiver.url("/hook"),
    )  # fmt: skip
    Route.objects.create(team=team, severity=Severity.PAGE, channel=hook, group_wait_seconds=0)
    Rule.objects.create(
        team=team, name="indexer down", kind=RuleKind.SERVICE_STATE, severity=Severity.PAGE,
        params={"states": ["down"], "for_seconds": 0},
    )  # fmt: skip


def start_rollout(stack: Stack, world: Any, pause_seconds: int) -> int:
    """Start checkout 2.0 through the API, as the CLI would."""
    _, token = ApiToken.issue(team=world.team, name="ci", scopes=["deploy", "read"])
    response = httpx.post(
        stack.web_url + "/api/v1/rollouts",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "service": world.service.slug,
            "environment": world.production.slug,
            "version": "2.0",
            "steps": [
                {"set_weight": 50},
                {"pause": {"seconds": pause_seconds}},
                {"set_weight": 100},
            ],
        },
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


class LivePage:
    """A dashboard page's websocket, watching the events timeline."""

    def __init__(self, stack: Stack, cookie: bytes) -> None:
        self.stack = stack
        self.cookie = cookie.decode()
        self.socket = self._open()

    def _open(self) -> Any:
        url = self.stack.web_url.replace("http://", "ws://") + "/ws/live/?topics=events"
        return connect(  # closed by the server or by next_message()
            url,
            additional_headers={"Cookie": self.cookie, "Origin": self.stack.web_url},
            open_timeout=5,
            legacy=True,  # not a context manager: the socket outlives this call
        )

    def closed_by_server(self, timeout: float) -> None:
        """The server closes the socket with 1012 (the hub lost Redis: reconnect, re-sync)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.socket.recv(timeout=max(deadline - time.monotonic(), 0.1))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1012, closed
            return
        except TimeoutError:
            pass
        raise AssertionError("the live socket stayed open while Redis was down")

    def reconnect(self, timeout: float) -> None:
        """Reconnect as the page does once Redis is back (it then re-fetches what it shows)."""
        self.socket = wait_for(self._try_open, timeout, "the live socket to open again")

    def next_message(self, timeout: float) -> str:
        message = self.socket.recv(timeout=timeout)
        self.socket.close()
        return str(message)

    def _try_open(self) -> Any:
        try:
            socket = self._open()
        except OSError:
            return None
        try:
            socket.recv(timeout=0.5)
        except TimeoutError:
            return socket  # open and quiet: subscribed
        except ConnectionClosed:
            return None  # 1011: Redis not reachable yet; the page retries
        return socket
