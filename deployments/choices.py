"""Named states and kinds of rollouts, steps, analysis and traffic routers."""

from __future__ import annotations

from django.db import models

from controlplane.events import EventNames


class Strategy(models.TextChoices):
    CANARY = "canary", "Canary"
    BLUE_GREEN = "blue_green", "Blue/green"


class RolloutState(models.TextChoices):
    """Where a rollout is; the last four are terminal."""

    PENDING = "pending", "Pending"  # created, first step not yet run
    PROGRESSING = "progressing", "Progressing"  # running its steps
    PAUSED = "paused", "Paused"  # waiting: for a person, for data, or for the router to answer
    ROLLING_BACK = "rolling_back", "Rolling back"  # putting all traffic back on stable
    SUCCEEDED = "succeeded", "Succeeded"
    ROLLED_BACK = "rolled_back", "Rolled back"  # analysis failed, or a person rolled it back
    ABORTED = "aborted", "Aborted"  # a person aborted it; traffic is back on stable
    FAILED = "failed", "Failed"  # could not advance before its progress deadline; rolled back


ACTIVE_STATES = (
    RolloutState.PENDING,
    RolloutState.PROGRESSING,
    RolloutState.PAUSED,
    RolloutState.ROLLING_BACK,
)
TERMINAL_STATES = (
    RolloutState.SUCCEEDED,
    RolloutState.ROLLED_BACK,
    RolloutState.ABORTED,
    RolloutState.FAILED,
)
# Where a rollback lands: the terminal state it was started for.
ROLLBACK_ENDINGS = (RolloutState.ROLLED_BACK, RolloutState.ABORTED, RolloutState.FAILED)


class PauseCause(models.TextChoices):
    """Why a paused rollout is waiting; decides who may unpause it and whether time runs."""

    NONE = "", "Not paused"
    MANUAL = "manual", "Paused by a person"
    PROMOTION = "promotion", "Waiting to be promoted"
    INCONCLUSIVE = "inconclusive", "Analysis had no data"
    DRIVER_ERROR = "driver_error", "The traffic router failed; retrying"


class StepKind(models.TextChoices):
    SET_WEIGHT = "set_weight", "Set weight"
    PAUSE = "pause", "Pause"
    ANALYSIS = "analysis", "Analysis"
    PREVIEW = "preview", "Preview"
    DRAIN_STABLE = "drain_stable", "Drain stable"
    FINALIZE = "finalize", "Finalize"  # all traffic on the new version, then succeed
    ROLLBACK = "rollback", "Rollback"  # all traffic back on stable


class StepOutcome(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    SKIPPED = "skipped", "Skipped"  # promoted past, or interrupted by a rollback
    FAILED = "failed", "Failed"


class Verdict(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    INCONCLUSIVE = "inconclusive", "Inconclusive"


class AnalysisState(models.TextChoices):
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    INCONCLUSIVE = "inconclusive", "Inconclusive"
    CANCELLED = "cancelled", "Cancelled"


class Provider(models.TextChoices):
    CANARY_HEALTH = "canary_health", "Canary health"
    LB_STATS = "lb_stats", "Load balancer stats"
    PROMETHEUS = "prometheus", "Prometheus query"
    WEBHOOK = "webhook", "Web hook"
    DEPENDENTS = "dependents", "Dependents"


class RouterKind(models.TextChoices):
    HAPROXY = "haproxy", "HAProxy (runtime API)"
    AWS_ALB = "aws_alb", "AWS Application Load Balancer"


class Action(models.TextChoices):
    """What a person or CI can ask of a rollout."""

    PAUSE = "pause", "Pause"
    RESUME = "resume", "Resume"
    PROMOTE = "promote", "Promote"
    ABORT = "abort", "Abort"
    RETRY = "retry", "Retry"
    ROLLBACK = "rollback", "Roll back"


class Weekday(models.TextChoices):
    """Days of a recurring freeze window, in Python's weekday() order (Monday is 0)."""

    MON = "mon", "Monday"
    TUE = "tue", "Tuesday"
    WED = "wed", "Wednesday"
    THU = "thu", "Thursday"
    FRI = "fri", "Friday"
    SAT = "sat", "Saturday"
    SUN = "sun", "Sunday"


WEEKDAYS = [day.value for day in Weekday]  # index = date.weekday()


# -- deployments' events -----------------------------------------------------------------------


class RolloutEvent(EventNames):
    FAMILY = "rollout."
    CREATED = "rollout.created"
    STEP_STARTED = "rollout.step_started"
    ANALYSIS = "rollout.analysis"  # a measurement was read (its verdict in the payload)
    PAUSED = "rollout.paused"
    RESUMED = "rollout.resumed"
    PROMOTED = "rollout.promoted"
    DRIVER_ERROR = "rollout.driver_error"  # the traffic router failed; retried
    # The router had drifted from the rollout's step (HAProxy restarted, a hand edit): the
    # reconciler re-applied it; the payload lists each difference.
    TRAFFIC_REAPPLIED = "rollout.traffic_reapplied"
    SUCCEEDED = "rollout.succeeded"
    ROLLED_BACK = "rollout.rolled_back"
    ABORTED = "rollout.aborted"
    FAILED = "rollout.failed"


class FreezeWindowEvent(EventNames):
    FAMILY = "freeze_window."
    CREATED = "freeze_window.created"
    UPDATED = "freeze_window.updated"
    DELETED = "freeze_window.deleted"


class RecurringFreezeWindowEvent(EventNames):
    FAMILY = "recurring_freeze_window."
    CREATED = "recurring_freeze_window.created"
    UPDATED = "recurring_freeze_window.updated"
    DELETED = "recurring_freeze_window.deleted"


FREEZE_WINDOW_EVENTS = FreezeWindowEvent.resource("freeze window")
RECURRING_FREEZE_WINDOW_EVENTS = RecurringFreezeWindowEvent.resource("recurring freeze window")
