"""Celery entry points for debug windows: the beat's pass, applying one window."""

from __future__ import annotations

from celery import shared_task

from debugging import windows


@shared_task(name="debugging.tasks.tick", ignore_result=True)
def tick() -> int:
    """Every 2 s: close the windows that ended, queue the failed applies whose backoff is
    over, lease the windows with reverts to prove, queue each."""
    windows.close_due()
    for window_id in windows.claim_applies():
        apply_window.delay(window_id)
    claimed = windows.claim_reverts()
    for window_id in claimed:
        revert_window.delay(window_id)
    return len(claimed)


@shared_task(name="debugging.tasks.apply_window", ignore_result=True, acks_late=True)
def apply_window(window_id: int) -> int:
    return windows.apply(window_id)


@shared_task(name="debugging.tasks.revert_window", ignore_result=True, acks_late=True)
def revert_window(window_id: int) -> dict[str, int]:
    return windows.revert(window_id)
