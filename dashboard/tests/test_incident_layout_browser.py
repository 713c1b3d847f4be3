"""The incident list reads at a glance in Debian's chromium: one line per incident at a
desktop width, every column on screen; a card per incident on a phone, nothing cut off."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from controlplane.tests.browser import ARTIFACTS, log_in
from dashboard.tests.conftest import incident

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TITLES = [
    "checkout in production is down",
    "payments latency p99 above 800 ms for 10 minutes",
    "inventory error budget burn rate 14.4x over 1 hour",
]


def _rows(world: Any) -> list[Any]:
    return [incident(world, world.service, title) for title in TITLES]


def _line_height(page: Page) -> float:
    return float(page.evaluate(
        "() => parseFloat(getComputedStyle(document.querySelector('.sb-incidents td')).lineHeight)"
    ))


@pytest.mark.parametrize("path", ["/", "/alerts/"])
def test_at_a_desktop_width_each_incident_is_one_line_with_every_column_on_screen(
    world: Any, page: Page, path: str
) -> None:
    made = _rows(world)
    page.set_viewport_size({"width": 1400, "height": 900})
    log_in(page, "owner", "pw-owner")
    page.goto(path)
    line = _line_height(page)
    for row in made:
        box = page.locator(f"#incident-{row.pk}").bounding_box()
        title = page.locator(f"#incident-{row.pk} td.sb-incident-title").bounding_box()
        env = page.locator(f"#incident-{row.pk} td[data-label='Env']")
        env_box = env.bounding_box()
        assert box and title and env_box
        # one line: the row is about one line of text (plus padding and the small buttons)
        assert box["height"] < 2.6 * line, (row.title, box["height"], line)
        # the title has room to be read, and the environment is on screen, not cut off
        assert title["width"] >= 350, title
        assert env_box["x"] + env_box["width"] <= 1400
        assert env.inner_text().strip() == "production"
        # and no fact is cut short: each short column shows its whole text
        for cell in page.locator(f"#incident-{row.pk} td.sb-incident-meta").all():
            assert cell.evaluate("el => el.scrollWidth <= el.clientWidth"), cell.inner_text()
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 1400
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"incidents-1400{path.replace('/', '-')}.png"))


def test_on_a_phone_each_incident_is_a_card_and_nothing_scrolls_sideways(
    world: Any, page: Page
) -> None:
    made = _rows(world)
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, "owner", "pw-owner")
    page.goto("/")
    for row in made:
        title = page.locator(f"#incident-{row.pk} td.sb-incident-title")
        box = title.bounding_box()
        assert box is not None
        # the title wraps across the card's width instead of being squeezed or hidden
        assert box["width"] >= 300, box
        assert row.title in title.inner_text()
        env = page.locator(f"#incident-{row.pk} td[data-label='Env']")
        env_box = env.bounding_box()
        assert env_box is not None and env_box["x"] + env_box["width"] <= 390
        # facts carry their label, since the column headings are not shown
        assert page.evaluate(
            "el => getComputedStyle(el, '::before').content",
            env.element_handle(),
        ) == '"Env "'
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "incidents-390.png"), full_page=True)

