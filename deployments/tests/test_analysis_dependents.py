"""The dependents provider reads what callers see: each caller's failure rate, slow-call rate
and p99 towards the service, against the same caller before the new version took traffic.

The threshold maths is tested on its own; the provider with circuit reports stored through
the real ingest (circuits.ingest.store, what the push API and the scrapers call)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from catalog.models import Service
from circuits.ingest.reports import Report
from circuits.ingest.store import resolve, store
from deployments.analysis import PROVIDERS, Context, Result
from deployments.analysis.callers import Figures, Limits, problems
from deployments.choices import StepKind, StepOutcome, Verdict
from deployments.models import Rollout, RolloutStep
from deployments.strategies import metric_settings

EDGE = "checkout → inventory"
LIMITS = Limits()  # the defaults: failures max 5 %, +5 pp; slow calls +10 pp; >= 20 calls


def figures(failures: float | None, slow: float | None = 0.0, p99: float | None = None) -> Figures:
    return Figures(calls=100, failure_rate=failures, slow_call_rate=slow, latency_p99_ms=p99)


# --- the threshold maths -------------------------------------------------------------------


def test_a_jump_in_failures_names_the_caller_the_figures_and_the_limits() -> None:
    assert problems(EDGE, figures(31), figures(0), LIMITS) == [
        "checkout → inventory failures 31 % vs 0 % before (max 5 %, +5 pp)"
    ]


def test_a_small_rise_within_both_limits_passes() -> None:
    assert problems(EDGE, figures(4.5), figures(0.5), LIMITS) == []


def test_what_was_already_over_the_maximum_is_judged_by_its_increase_only() -> None:
    # given a caller already failing 10 % of its calls before the step
    before = figures(10)
    # then a little worse is not blamed on the new version, a lot worse is
    assert problems(EDGE, figures(14), before, LIMITS) == []
    assert problems(EDGE, figures(16), before, LIMITS) == [
        "checkout → inventory failures 16 % vs 10 % before (max 5 %, +5 pp)"
    ]


def test_without_a_figure_from_before_only_the_maximum_applies() -> None:
    assert problems(EDGE, figures(8), None, LIMITS) == [
        "checkout → inventory failures 8 % (no figure from before) (max 5 %, +5 pp)"
    ]
    assert problems(EDGE, figures(4), None, LIMITS) == []


def test_slow_calls_and_p99_have_limits_of_their_own() -> None:
    limits = Limits(max_slow_call_rate=20, max_latency_increase_ms=100, max_latency_ratio=3)
    found = problems(EDGE, figures(0, slow=25, p99=450), figures(0, slow=2, p99=120), limits)
    assert found == [
        "checkout → inventory slow calls 25 % vs 2 % before (max 20 %, +10 pp)",
        "checkout → inventory p99 450 ms vs 120 ms before (max +100 ms, max x3)",
    ]
    # a p99 needs a figure from before to be compared with
    assert problems(EDGE, figures(0, p99=450), figures(0, p99=None), limits) == []


def test_the_limits_come_from_the_metric_with_defaults() -> None:
    limits = Limits.of({"max_failure_rate": 2, "min_calls": 50})
    assert (limits.max_failure_rate, limits.max_failure_rate_increase) == (2.0, 5.0)
    assert limits.min_calls == 50
    assert limits.describe() == "per caller: failures max 2 %, +5 pp; slow +10 pp; >= 50 calls"


rates = st.floats(min_value=0, max_value=100, allow_nan=False)


@given(now=rates, before=rates, worse=st.floats(min_value=0, max_value=50))
def test_no_change_never_fails_and_worse_never_passes_what_failed(
    now: float, before: float, worse: float
) -> None:
    # a caller whose figures did not move is never blamed on the new version
    assert problems(EDGE, figures(before), figures(before), LIMITS) == []
    # and a caller that failed a limit fails it still with more failures
    if problems(EDGE, figures(now), figures(before), LIMITS):
        assert problems(EDGE, figures(min(100.0, now + worse)), figures(before), LIMITS)


# --- the provider, over stored circuit reports ---------------------------------------------


@pytest.fixture
def callers(world: Any) -> list[Service]:
    """storefront and mobile call checkout (the service the `rollout` fixture rolls out)."""
    found = []
    for slug in ("storefront", "mobile"):
        caller = Service.objects.create(slug=slug, name=slug.title(), team=world.other_team)
        caller.depends_on.add(world.service)
        found.append(caller)
    return found


def report(
    caller: str,
    *,
    calls: int,
    failures: float | None,
    at: datetime | None = None,
    instance: str = "10.0.0.1:8080",
    slow: float | None = 0.0,
) -> None:
    """One caller instance's report of its circuit towards checkout, stored as ingest does."""
    reports = [
        Report(
            service=caller,
            environment="production",
            circuit="checkout",
            instance_key=instance,
            state="closed",
            reported_at=at or timezone.now(),
            failure_rate=failures,
            slow_call_rate=slow,
            calls=calls,
            failed_calls=round(calls * (failures or 0) / 100),
            protects="service:checkout",
        )
    ]
    store(reports, resolve(reports), source="push")


def weight_moved(rollout: Rollout, at: datetime, weight: int = 50) -> None:
    """The rollout's set-weight step, done at `at` (what the reconciler records)."""
    RolloutStep.objects.create(
        rollout=rollout,
        index=0,
        kind=StepKind.SET_WEIGHT,
        outcome=StepOutcome.DONE,
        started_at=at,
        finished_at=at,
        desired_weight=weight,
    )


class Analysis:
    """A dependents metric begun now (as the reconciler begins it after a set-weight step)."""

    def __init__(self, rollout: Rollout, **metric: Any) -> None:
        self.provider = PROVIDERS["dependents"]
        settings = metric_settings({"provider": "dependents", **metric})
        self.ctx = Context(rollout, settings, (), ())
        self.ctx.baseline = self.provider.begin(self.ctx)

    def read(self) -> Result:
        return self.provider.measure(self.ctx)


def read(rollout: Rollout, **metric: Any) -> Result:
    """Begin the analysis now and take one reading at once."""
    return Analysis(rollout, **metric).read()


@pytest.mark.django_db
def test_it_fails_when_a_caller_sees_failures_it_did_not_see_before(
    rollout: Rollout, callers: list[Service]
) -> None:
    # given storefront failing none of its calls to checkout before the weight moved
    moved = timezone.now() - timedelta(seconds=10)
    report("storefront", calls=200, failures=0.0, at=moved - timedelta(seconds=5))
    weight_moved(rollout, moved)
    analysis = Analysis(rollout)
    # when, after it moved, storefront's calls fail 31 % of the time
    report("storefront", calls=200, failures=31.0)
    result = analysis.read()
    # then the reading fails, naming the caller, the callee and the figures
    assert result.verdict == Verdict.FAIL
    assert result.reason == "storefront → checkout failures 31 % vs 0 % before (max 5 %, +5 pp)"
    row = result.detail["callers"][0]
    assert (row["caller"], row["now"]["failure_rate"], row["before"]["failure_rate"]) == (
        "storefront",
        31.0,
        0.0,
    )


@pytest.mark.django_db
def test_it_passes_with_each_callers_figures_in_the_reason(
    rollout: Rollout, callers: list[Service]
) -> None:
    moved = timezone.now() - timedelta(seconds=10)
    for caller in ("storefront", "mobile"):
        report(caller, calls=100, failures=1.0, at=moved - timedelta(seconds=5))
    weight_moved(rollout, moved)
    analysis = Analysis(rollout)
    report("storefront", calls=120, failures=2.0)
    report("mobile", calls=80, failures=1.0)
    result = analysis.read()
    assert result.verdict == Verdict.PASS
    assert result.reason == (
        "mobile → checkout failures 1 % vs 1 % before over 80 calls; "
        "storefront → checkout failures 2 % vs 1 % before over 120 calls; "
        "2 dependent service(s) healthy, no circuit opened"
    )


@pytest.mark.django_db
def test_too_few_calls_is_no_data_and_says_so(rollout: Rollout, callers: list[Service]) -> None:
    # given a caller that made only 7 calls since the step began, and wants 20
    analysis = Analysis(rollout)
    report("storefront", calls=7, failures=100.0)
    result = analysis.read()
    # then nothing is judged on them: the reading has no data, and says why
    assert result.verdict == Verdict.INCONCLUSIVE
    assert result.reason == (
        "no caller's calls to checkout to judge yet: storefront → checkout: only 7 calls (need 20)"
    )


@pytest.mark.django_db
def test_a_quiet_caller_is_named_while_the_others_are_judged(
    rollout: Rollout, callers: list[Service]
) -> None:
    analysis = Analysis(rollout, min_calls=10)
    report("storefront", calls=7, failures=0.0)
    report("mobile", calls=300, failures=0.0)
    result = analysis.read()
    assert result.verdict == Verdict.PASS
    assert "mobile → checkout failures 0 % over 300 calls" in result.reason
    assert "storefront → checkout: only 7 calls (need 10)" in result.reason


@pytest.mark.django_db
def test_reports_from_before_the_weight_moved_are_not_a_reading(
    rollout: Rollout, callers: list[Service]
) -> None:
    # given storefront's last report came before the new version took traffic
    moved = timezone.now() - timedelta(seconds=5)
    report("storefront", calls=500, failures=0.0, at=moved - timedelta(seconds=1))
    weight_moved(rollout, moved)
    result = read(rollout)
    assert result.verdict == Verdict.INCONCLUSIVE
    assert "storefront → checkout: no report since the weight changed" in result.reason


@pytest.mark.django_db
def test_calls_of_every_caller_instance_are_combined_by_volume(
    rollout: Rollout, callers: list[Service]
) -> None:
    analysis = Analysis(rollout)
    report("storefront", calls=300, failures=0.0, instance="10.0.0.1:8080")
    report("storefront", calls=100, failures=40.0, instance="10.0.0.2:8080")
    result = analysis.read()
    assert result.verdict == Verdict.FAIL
    assert result.reason.startswith("storefront → checkout failures 10 %")
    assert result.detail["callers"][0]["now"]["calls"] == 400


@pytest.mark.django_db
def test_a_later_step_compares_with_before_the_rollout_moved_any_traffic(
    rollout: Rollout, callers: list[Service]
) -> None:
    # given the first analysis took storefront's 0 % from before any traffic moved
    moved = timezone.now() - timedelta(seconds=20)
    report("storefront", calls=200, failures=0.0, at=moved - timedelta(seconds=5))
    weight_moved(rollout, moved, weight=20)
    first = Analysis(rollout).ctx
    rollout.analysis_runs.create(
        step_index=1, metrics=[first.metric], progress={"dependents": {"baseline": first.baseline}}
    )
    # when a later step's analysis begins while storefront already sees 4 %
    report("storefront", calls=200, failures=4.0, at=moved + timedelta(seconds=5))
    weight_moved(rollout, moved + timedelta(seconds=10), weight=50)
    analysis = Analysis(rollout)
    report("storefront", calls=200, failures=9.5)
    result = analysis.read()
    # then 9.5 % is held against the 0 % from before the rollout, not the 4 % of step one
    assert result.verdict == Verdict.FAIL
    assert result.reason == "storefront → checkout failures 9.5 % vs 0 % before (max 5 %, +5 pp)"


@pytest.mark.django_db
def test_circuit_names_are_kept_short_and_printable_in_the_reason(
    rollout: Rollout, callers: list[Service]
) -> None:
    name = "checkout\x1b[31m\n" + "x" * 150
    analysis = Analysis(rollout)
    reports = [
        Report(
            service="storefront",
            environment="production",
            circuit=name,
            instance_key="10.0.0.1:8080",
            state="closed",
            reported_at=timezone.now(),
            failure_rate=50.0,
            calls=100,
            protects="service:checkout",
        )
    ]
    store(reports, resolve(reports), source="push")
    result = analysis.read()
    assert result.verdict == Verdict.FAIL
    assert "\x1b" not in result.reason and "\n" not in result.reason
    assert len(result.reason) <= 500


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("max_failure_rate", 150, "max_failure_rate: a number from 0 to 100"),
        ("max_failure_rate_increase", -1, "max_failure_rate_increase: a number from 0 to 100"),
        ("max_latency_ratio", 0, "max_latency_ratio: a number > 0"),
        ("min_calls", 0, "min_calls: a whole number >= 1"),
        ("min_calls", 2.5, "min_calls: wrong type"),
        ("max_slow_call_rate", "lots", "max_slow_call_rate: wrong type"),
    ],
)
def test_the_api_refuses_bad_settings_naming_the_field(
    world: Any, routed: Any, api_as: Any, setting: str, value: Any, words: str
) -> None:
    metric = {"provider": "dependents", setting: value}
    response = api_as("deployer").post(
        "/api/v1/rollouts",
        {"service": "checkout", "environment": "production", "version": "2.0",
         "analysis": [metric]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert any(f"analysis.0.{words}" in reason for reason in fields["analysis"]), fields


@pytest.mark.django_db
def test_the_openapi_document_types_the_settings(world: Any) -> None:
    from rest_framework.test import APIClient

    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    shape = schema.json()["components"]["schemas"]["DependentsMetric"]["properties"]
    assert shape["max_failure_rate"] == {
        "type": "number",
        "description": shape["max_failure_rate"]["description"],
        "minimum": 0,
        "maximum": 100,
        "default": 5.0,
    }
    assert shape["min_calls"]["type"] == "integer"
    assert shape["max_latency_ratio"]["exclusiveMinimum"] is True
