"""Live fragments for rollout events: the board, the rollout page and the service's history.

Each is a `Tile` (state, not a log line), coalesced by the spine. A tile is skipped when
no page watches its topic (`controlplane.live.watched`, which the spine applies to every
renderer too): a page that opens later renders the current state itself, so a worker busy
with a hundred rollouts does not render pages nobody is looking at.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.template.loader import render_to_string

from controlplane.live import Fragment, Tile, renders, watched
from controlplane.models import Event
from deployments.choices import TERMINAL_STATES, RolloutEvent
from deployments.models import Rollout

BOARD_TOPIC = "rollouts"
# Pages after the first of the board watch only their rows: a redraw of the board is page 1.
BOARD_ROWS_TOPIC = "rollouts:rows"
# Events after which a rollout joins or leaves the active table: the whole board is redrawn.
BOARD_CHANGES = (RolloutEvent.CREATED, RolloutEvent.SUCCEEDED)


def rollout_topic(rollout_id: int) -> str:
    return f"rollout:{rollout_id}"


def render_board() -> str:
    from deployments.views import board_context

    return render_to_string("deployments/partials/board.html", {**board_context(), "oob": True})


def render_row(rollout_id: int, board: bool = True) -> str:
    """The rollout's row; on page 1 (`board`) a finished one redraws the board instead."""
    from deployments.views import latest_verdicts

    rollout = Rollout.objects.select_related("team", "service", "environment").get(pk=rollout_id)
    rollout.verdicts = latest_verdicts([rollout_id]).get(rollout_id, [])  # type: ignore[attr-defined]
    if rollout.is_terminal:  # it leaves the active table for the history
        return render_board() if board else ""
    return render_to_string(
        "deployments/partials/board_row.html", {"rollout": rollout, "oob": True}
    )


def render_rollout(rollout_id: int) -> str:
    from deployments.views import rollout_context

    rollout = Rollout.objects.select_related("team", "service", "environment").get(pk=rollout_id)
    return render_to_string(
        "deployments/partials/rollout_main.html", {**rollout_context(rollout), "oob": True}
    )


def render_history(service_id: int) -> str:
    from catalog.models import Service
    from deployments.views import service_history

    service = Service.objects.get(pk=service_id)
    return render_to_string(
        "deployments/partials/service_history.html", {**service_history(service), "oob": True}
    )


@renders(RolloutEvent.FAMILY)
def rollout_fragments(event: Event) -> Iterable[Fragment]:
    if event.subject_type != "deployments.rollout" or not event.subject_id.isdigit():
        return []
    rollout_id = int(event.subject_id)
    service_topic = f"service:{event.service.slug}" if event.service is not None else ""
    topics = (BOARD_TOPIC, BOARD_ROWS_TOPIC, rollout_topic(rollout_id), service_topic)
    looked_at = watched([t for t in topics if t])
    fragments: list[Fragment] = []
    state = event.payload.get("state")
    moved = event.action in BOARD_CHANGES or event.payload.get("action") == "retry"
    if BOARD_TOPIC in looked_at:
        if moved or state in TERMINAL_STATES:
            fragments.append(Tile(BOARD_TOPIC, "board", render_board))
        else:
            fragments.append(Tile(BOARD_TOPIC, f"row-{rollout_id}", lambda: render_row(rollout_id)))
    if BOARD_ROWS_TOPIC in looked_at and not moved and state not in TERMINAL_STATES:
        # a later page swaps the row only if it shows it (the swap finds no id otherwise)
        fragments.append(
            Tile(BOARD_ROWS_TOPIC, f"row-{rollout_id}", lambda: render_row(rollout_id, board=False))
        )
    if rollout_topic(rollout_id) in looked_at:
        fragments.append(
            Tile(rollout_topic(rollout_id), "main", lambda: render_rollout(rollout_id))
        )
    if event.service is not None and service_topic in looked_at:
        service_id = event.service.pk
        fragments.append(
            Tile(
                service_topic,
                "deploy-history",
                lambda: render_history(service_id),
            )
        )
    return fragments
