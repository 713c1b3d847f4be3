"""`signalbox scale ...` against a live server: what an engineer at a terminal sees.

The first test drives the real rig (the demo fleet's control API, a real HAProxy, steady
traffic) with the workers' passes running in a thread, so `--wait` follows real launches
and real drains to the end."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import yaml
from django.db import connection

from catalog.models import ApiToken
from deployments.tests.conftest import run_cli
from scaling.models import Decision, ScalingGroup, ScalingMetric
from scaling.tests.test_lifecycle_process import Rig, rig  # noqa: F401 (the rig fixture)

pytestmark = pytest.mark.django_db(transaction=True)

FAST = ("--wait", "--poll", "0.2", "--timeout", "60")


def _env(world: Any, live_server: Any, scopes: list[str]) -> dict[str, str]:
    _, plain = ApiToken.issue(team=world.team, name="-".join(["cli", *scopes]), scopes=scopes)
    return {"SIGNALBOX_URL": live_server.url, "SIGNALBOX_TOKEN": plain}


class Workers:
    """The scaler's and prober's passes, in a thread, until stopped."""

    def __init__(self, passes: Rig) -> None:
        self.rig = passes
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                self.rig.step()
                self.stop.wait(0.1)
        except BaseException as exc:  # surfaced by the test, not lost in the thread
            self.error = exc
        finally:
            connection.close()

    def __enter__(self) -> Workers:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        if self.error is not None:
            raise self.error


def test_set_waits_for_the_launch_to_take_traffic_and_for_the_drain_to_end(
    rig: Rig,  # noqa: F811
    world: Any,
    live_server: Any,
) -> None:
    env = _env(world, live_server, ["read", "deploy"])
    with Workers(rig):
        # scale out: the command returns once the new instance is in service
        code, out, err = run_cli(env, "scale", "set", "checkout", "production", "3",
                                 "--reason", "launch day", *FAST)  # fmt: skip
        assert code == 0, (out, err)
        assert ": in_service, taking traffic" in out
        assert out.rstrip().splitlines()[-1].endswith(
            "checkout/production: desired 3 (1..4) · 3 in service · paused (launch day)"
        )
        # scale in: the drain report is printed as the termination moves
        code, out, err = run_cli(env, "scale", "set", "checkout", "production", "2", *FAST)
        assert code == 0, (out, err)
        ended = [line for line in out.splitlines() if ": terminated" in line]
        assert ended, out
        assert "0 5xx" in ended[-1] and "ended ready" in ended[-1]
        assert "routing stopped in" in ended[-1]
        by = "token:payments/cli-read-deploy"
        assert out.rstrip().endswith(f"· 2 in service · paused (set to 2 by {by})")
    assert rig.traffic.failures == []
    # history tells the story, newest first: the scale-in, then the scale-out
    code, out, _ = run_cli(env, "scale", "history", "checkout", "production")
    assert code == 0
    decided = [line for line in out.splitlines() if "decided" in line]
    assert "decided 3 -> 2 (manual)" in decided[0] and "decided 2 -> 3 (manual)" in decided[1]
    assert "launch day" in out
    assert out.index("termination of") < out.index("launch ")


def _group(world: Any) -> ScalingGroup:
    group = ScalingGroup.objects.create(
        service=world.service,
        environment=world.production,
        driver="process",
        driver_config={"control_url": "http://127.0.0.1:7900"},
        min_instances=1,
        max_instances=5,
        desired=2,
    )
    ScalingMetric.objects.create(group=group, source="cpu", target=60)
    Decision.objects.create(
        group=group,
        current=2,
        recommended=2,
        desired=2,
        inputs=[{"metric": "cpu", "average": 31.0, "target": 60, "readings": 2}],
        steps=["cpu: ceil(2 * 31 / 60) = 2", "within tolerance: stays at 2"],
    )
    return group


def test_show_pause_resume_restart_and_the_errors_people_make(
    world: Any, routed: Any, live_server: Any
) -> None:
    group = _group(world)
    env = _env(world, live_server, ["read", "deploy"])

    code, out, _ = run_cli(env, "scale", "list")
    assert (code, out.strip()) == (
        0,
        "checkout/production: desired 2 (1..5) · 0 in service · autoscaling",
    )
    code, out, _ = run_cli(env, "scale", "show", "checkout", "production")
    assert code == 0
    assert "metric cpu: target 60 (over 60s)" in out
    assert "last decision:" in out and "cpu: ceil(2 * 31 / 60) = 2" in out
    # for scripts: the API's objects, as JSON or YAML
    code, out, _ = run_cli(env, "scale", "show", "checkout", "production", "-o", "json")
    shown = json.loads(out)
    assert code == 0 and (shown["id"], shown["desired"]) == (group.pk, 2)
    assert shown["last_decision"]["steps"][0] == "cpu: ceil(2 * 31 / 60) = 2"
    code, out, _ = run_cli(env, "scale", "list", "--chunk-size", "1", "-o", "yaml")
    assert code == 0 and [g["id"] for g in yaml.safe_load(out)] == [group.pk]
    code, out, _ = run_cli(env, "scale", "history", "checkout", "production", "-o", "json")
    history = json.loads(out)
    assert code == 0 and len(history["decisions"]) == 1 and history["launches"] == []

    code, out, _ = run_cli(env, "scale", "pause", "checkout", "production", "--reason", "sale")
    assert code == 0 and out.strip().endswith("paused (sale)")
    code, out, _ = run_cli(env, "scale", "resume", "checkout", "production")
    assert code == 0 and out.strip().endswith("· autoscaling")
    group.refresh_from_db()
    assert group.enabled

    code, out, _ = run_cli(env, "scale", "restart", "checkout", "production")
    assert code == 0 and "rolling restart since" in out
    # a second restart while one runs is refused, with the reason
    code, _, err = run_cli(env, "scale", "restart", "checkout", "production")
    assert code == 6 and "already restarting" in err

    # outside the bounds: refused by the API, naming them; nothing changed
    code, _, err = run_cli(env, "scale", "set", "checkout", "production", "9")
    assert code == 6 and "outside checkout/production's bounds (1 to 5)" in err
    group.refresh_from_db()
    assert group.desired == 2 and group.enabled
    # not a number, a group that does not exist, an unknown environment
    code, _, err = run_cli(env, "scale", "set", "checkout", "production", "three")
    assert code == 2 and "whole number of instances (got 'three')" in err
    code, _, err = run_cli(env, "scale", "show", "checkout", "staging")
    assert code == 2 and "checkout has no scaling group in staging" in err
    code, _, err = run_cli(env, "scale", "show", "checkout", "nowhere")
    assert code == 6 and "environment" in err

    # a read-only token reads but may not act
    reader = _env(world, live_server, ["read"])
    assert run_cli(reader, "scale", "show", "checkout", "production")[0] == 0
    code, _, err = run_cli(reader, "scale", "pause", "checkout", "production")
    assert code == 6 and "403" in err
    group.refresh_from_db()
    assert group.enabled
