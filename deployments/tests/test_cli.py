"""The `signalbox` command against a live server: what CI sees, exit code by exit code."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from catalog.models import ApiToken
from deployments.models import Rollout
from deployments.tests.conftest import Fleet, free_port, lb_metric, run_cli

# A live server needs committed data: these tests flush the database after each (~3 s),
# so each one covers several exit codes.
live = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ci(world: Any, live_server: Any) -> dict[str, str]:
    """SIGNALBOX_URL and SIGNALBOX_TOKEN as CI would set them (a payments deploy token)."""
    _, plain = ApiToken.issue(team=world.team, name="ci", scopes=["read", "deploy"])
    return {"SIGNALBOX_URL": live_server.url, "SIGNALBOX_TOKEN": plain}


START = ("rollout", "start", "--service", "checkout", "--env", "production", "--version", "2.0")
FAST = ("--wait", "--poll", "0.2", "--timeout", "30")


@live
def test_it_exits_0_on_success_and_steers_rollouts(
    fleet: Fleet, ci: dict[str, str], reconciling: None
) -> None:
    # a rollout that succeeds, streamed
    steps = '[{"set_weight": 50}, {"pause": {"seconds": 1}}, {"set_weight": 100}]'
    code, out, err = run_cli(ci, *START, "--steps", steps, "--reason", "release", *FAST)
    assert code == 0, (out, err)
    assert "succeeded" in out
    assert "50% new / 50% stable" in out
    assert "100% new / 0% stable" in out
    # rollback after success starts a rollout back to 1.0, which succeeds too
    first_id = out.split(":")[0].removeprefix("rollout #")
    code, out, _ = run_cli(ci, "rollout", "rollback", first_id, *FAST)
    assert code == 0, out
    assert "started rollout" in out and "back to 1.0" in out
    # pause, resume and promote on a rollout waiting for promotion
    code, out, _ = run_cli(
        ci, *START, "--steps", '[{"set_weight": 10}, {"pause": {}}, {"set_weight": 100}]'
    )
    rollout_id = out.split(":")[0].removeprefix("rollout #")
    assert run_cli(ci, "rollout", "pause", rollout_id)[0] == 0
    assert run_cli(ci, "rollout", "pause", rollout_id)[0] == 6  # already paused
    assert run_cli(ci, "rollout", "resume", rollout_id)[0] == 0
    code, out, _ = run_cli(ci, "rollout", "promote", rollout_id, "--full", *FAST)
    assert code == 0, out
    code, out, _ = run_cli(ci, "rollout", "status", rollout_id)
    assert code == 0 and "succeeded" in out
    code, out, _ = run_cli(ci, "rollout", "list", "--service", "checkout")
    assert code == 0 and out.count("\n") == 4  # the header and three rollouts
    assert out.splitlines()[0].split()[:3] == ["ID", "SERVICE", "ENV"]


@live
def test_it_exits_1_with_the_reason_when_analysis_rolls_back(
    fleet: Fleet, ci: dict[str, str], reconciling: None
) -> None:
    fleet.canary[0].failing = True
    steps = (
        '[{"set_weight": 50}, {"analysis": {"metrics": [{"provider": "lb_stats", '
        '"interval": 0.5, "success_count": 1, "min_requests": 3}]}}, {"set_weight": 100}]'
    )
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            fleet.proxy.traffic(5)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        code, out, _ = run_cli(ci, *START, "--steps", steps, *FAST)
    finally:
        stop.set()
        sender.join(5)
    assert code == 1, out
    assert "lb_stats: fail" in out
    assert "rolled back: analysis failed: lb_stats: 5xx rate" in out


@live
def test_it_exits_3_when_aborted_and_4_when_the_deadline_passes(
    fleet: Fleet, ci: dict[str, str], reconciling: None
) -> None:
    def abort_when_waiting() -> None:
        for _ in range(200):
            rollout = Rollout.objects.filter(state="paused").first()
            if rollout is not None:
                run_cli(ci, "rollout", "abort", str(rollout.pk), "--reason", "bad smell")
                return
            time.sleep(0.05)

    person = threading.Thread(target=abort_when_waiting, daemon=True)
    person.start()
    code, out, _ = run_cli(ci, *START, "--steps", '[{"set_weight": 10}, {"pause": {}}]', *FAST)
    person.join(10)
    assert code == 3, out
    assert "aborted by token:payments/ci: bad smell" in out
    # and a rollout that cannot get data before its deadline fails
    from deployments.models import DeploySettings

    DeploySettings.objects.create(service=fleet.world.service, progress_deadline_seconds=1)
    steps = f'[{{"set_weight": 10}}, {{"analysis": {{"metrics": [{_json(lb_metric())}]}}}}]'
    code, out, _ = run_cli(ci, *START, "--steps", steps, *FAST)
    assert code == 4, out
    assert "failed: progress deadline" in out


@live
def test_it_exits_5_on_timeout_and_6_when_refused(
    fleet: Fleet, ci: dict[str, str], reconciling: None
) -> None:
    # still running when --timeout runs out
    code, out, _ = run_cli(
        ci,
        *START,
        "--steps",
        '[{"pause": {}}]',
        "--idempotency-key",
        "ci-7",
        "--wait",
        "--poll",
        "0.1",
        "--timeout",
        "0.5",
    )
    assert code == 5
    assert "still paused after 0.5s; it carries on" in out
    # CI retrying the same call gets the same rollout, not a second one
    again = run_cli(ci, *START, "--steps", '[{"pause": {}}]', "--idempotency-key", "ci-7")
    assert again[0] == 0 and again[1].split(":")[0] == out.split(":")[0]
    assert Rollout.objects.count() == 1
    # refusals carry the API's reason
    code, _, err = run_cli(ci, *START[:-1], "3.0")
    assert code == 6
    assert "refused: 409 rollout_active: checkout already has an active rollout" in err
    code, _, err = run_cli({**ci, "SIGNALBOX_TOKEN": "sbx_nope_nope"}, "rollout", "status", "1")
    assert code == 6 and "401" in err
    code, _, err = run_cli(ci, *START[:-1], "2.0", "--steps", '[{"set_weight": 300}]')
    assert code == 6 and "steps.0.set_weight" in err
    # the installed entry point and `python -m cli` are the same command
    env = {**os.environ, **ci}
    entry = Path(sys.executable).with_name("signalbox")
    commands = [[sys.executable, "-m", "cli", "rollout", "list"]]
    if entry.exists():
        commands.append([str(entry), "rollout", "list"])
    for command in commands:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        assert "paused" in done.stdout


@pytest.mark.parametrize(
    ("env", "argv", "words"),
    [
        ({"SIGNALBOX_URL": ""}, ("rollout", "status", "1"), "set SIGNALBOX_URL"),
        ({"SIGNALBOX_URL": "signalbox.local"}, ("rollout", "status", "1"), "must start with http"),
        ({"SIGNALBOX_TOKEN": ""}, ("rollout", "status", "1"), "set SIGNALBOX_TOKEN"),
        ({}, (*START, "--steps", "[oops"), "--steps is not JSON"),
    ],
)
def test_it_exits_2_on_bad_usage(env: dict[str, str], argv: tuple[str, ...], words: str) -> None:
    base = {"SIGNALBOX_URL": "http://127.0.0.1:1", "SIGNALBOX_TOKEN": "sbx_x_y"}
    code, _, err = run_cli({**base, **env}, *argv)
    assert code == 2
    assert words in err


def test_it_exits_7_when_signalbox_is_unreachable() -> None:
    env = {"SIGNALBOX_URL": f"http://127.0.0.1:{free_port()}", "SIGNALBOX_TOKEN": "sbx_x_y"}
    code, _, err = run_cli(env, "rollout", "status", "1")
    assert code == 7
    assert "cannot reach Signalbox" in err


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
