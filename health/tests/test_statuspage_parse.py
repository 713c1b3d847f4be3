"""Reading Atlassian Statuspage's summary.json shape (an example in the shape of Atlassian's
public API v2 documentation, https://metastatuspage.com/api/v2/summary.json)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from health.choices import ExternalState
from health.statuspage import NotASummary, parse, state_of, summary_url

SUMMARY: dict[str, Any] = {
    "page": {
        "id": "y2j98763l56x",
        "name": "Atlassian Statuspage",
        "url": "http://status.atlassian.com",
        "updated_at": "2013-03-05T20:50:42Z",
    },
    "status": {"description": "Partial System Outage", "indicator": "major"},
    "components": [
        {
            "created_at": "2013-03-05T20:50:42Z",
            "description": None,
            "id": "b13yz5g2cw10",
            "name": "API",
            "page_id": "y2j98763l56x",
            "position": 1,
            "status": "partial_outage",
            "updated_at": "2013-03-05T20:50:42Z",
        },
        {
            "created_at": "2013-03-05T20:50:42Z",
            "description": None,
            "id": "9397cnvk62zn",
            "name": "Management Portal",
            "page_id": "y2j98763l56x",
            "position": 2,
            "status": "major_outage",
            "updated_at": "2013-03-05T20:50:42Z",
        },
    ],
    "incidents": [
        {
            "created_at": "2013-03-05T20:50:42Z",
            "id": "cp306tmzcl0y",
            "impact": "critical",
            "incident_updates": [
                {
                    "body": "Our master database has ham sandwiches flying out of the rack, and "
                    "we're working our hardest to stop the bleeding. The whole site is down "
                    "while we restore functionality, and we'll provide another update within 30 "
                    "minutes.",
                    "created_at": "2013-03-05T20:50:42Z",
                    "display_at": "2013-03-05T20:50:42Z",
                    "id": "jdy3tw5mt5r5",
                    "incident_id": "cp306tmzcl0y",
                    "status": "identified",
                    "updated_at": "2013-03-05T20:50:42Z",
                }
            ],
            "monitoring_at": None,
            "name": "Unplanned Database Outage",
            "page_id": "y2j98763l56x",
            "resolved_at": None,
            "shortlink": "http://stspg.dev:5000/Q0E",
            "status": "identified",
            "updated_at": "2013-03-05T20:50:42Z",
        }
    ],
    "scheduled_maintenances": [
        {
            "created_at": "2013-03-05T20:50:42Z",
            "id": "w1zdr745wmfy",
            "impact": "none",
            "incident_updates": [
                {
                    "body": "Our data center has informed us that they will be performing "
                    "routine network maintenance. No interruption in service is expected. Any "
                    "issues during this maintenance should be directed to our support center",
                    "created_at": "2013-03-05T20:50:42Z",
                    "display_at": "2013-03-05T20:50:42Z",
                    "id": "qq0vx910b3qj",
                    "incident_id": "w1zdr745wmfy",
                    "status": "scheduled",
                    "updated_at": "2013-03-05T20:50:42Z",
                }
            ],
            "monitoring_at": None,
            "name": "Data Layer Migration",
            "page_id": "y2j98763l56x",
            "resolved_at": None,
            "scheduled_for": "2013-03-07T20:50:42Z",
            "scheduled_until": "2013-03-07T22:50:42Z",
            "shortlink": "http://stspg.dev:5000/Q0R",
            "status": "scheduled",
            "updated_at": "2013-03-05T20:50:42Z",
        }
    ],
}


def test_it_reads_indicator_components_incidents_and_maintenances() -> None:
    page = parse(copy.deepcopy(SUMMARY))
    assert (page.indicator, page.description) == ("major", "Partial System Outage")
    assert [(c["name"], c["status"]) for c in page.components] == [
        ("API", "partial_outage"),
        ("Management Portal", "major_outage"),
    ]
    (incident,) = page.incidents
    assert incident == {
        "id": "cp306tmzcl0y",
        "name": "Unplanned Database Outage",
        "status": "identified",
        "impact": "critical",
        "shortlink": "http://stspg.dev:5000/Q0E",
        "updated_at": "2013-03-05T20:50:42Z",
        "components": [],
    }
    (maintenance,) = page.maintenances
    assert maintenance["name"] == "Data Layer Migration"
    assert maintenance["scheduled_for"] == "2013-03-07T20:50:42Z"
    assert maintenance["status"] == "scheduled"


@pytest.mark.parametrize(
    ("wanted", "state", "summary"),
    [
        ([], ExternalState.PARTIAL_OUTAGE, "their page says: Partial System Outage"),
        (["API"], ExternalState.PARTIAL_OUTAGE, "API: partial outage"),
        (["9397cnvk62zn"], ExternalState.MAJOR_OUTAGE, "Management Portal: major outage"),
        (["api", "management portal"], ExternalState.MAJOR_OUTAGE,
         "Management Portal: major outage"),
        (["Billing"], ExternalState.UNKNOWN,
         "none of the mapped components is on their page: Billing"),
        (["API", "Billing"], ExternalState.PARTIAL_OUTAGE,
         "API: partial outage (not on their page: Billing)"),
    ],
)  # fmt: skip
def test_it_maps_the_watched_components_to_one_state(
    wanted: list[str], state: ExternalState, summary: str
) -> None:
    assert state_of(parse(copy.deepcopy(SUMMARY)), wanted) == (state, summary)


@pytest.mark.parametrize(
    ("indicator", "state"),
    [
        ("none", ExternalState.OPERATIONAL),
        ("minor", ExternalState.DEGRADED),
        ("major", ExternalState.PARTIAL_OUTAGE),
        ("critical", ExternalState.MAJOR_OUTAGE),
        ("maintenance", ExternalState.MAINTENANCE),
        ("something-new", ExternalState.UNKNOWN),
    ],
)
def test_the_overall_indicator_maps_never_defaulting_to_operational(
    indicator: str, state: ExternalState
) -> None:
    doc = copy.deepcopy(SUMMARY)
    doc["status"]["indicator"] = indicator
    assert state_of(parse(doc), [])[0] == state


def test_a_maintenance_in_progress_with_nothing_broken_reads_maintenance() -> None:
    doc = copy.deepcopy(SUMMARY)
    doc["status"]["indicator"] = "none"
    doc["scheduled_maintenances"][0]["status"] = "in_progress"
    assert state_of(parse(doc), [])[0] == ExternalState.MAINTENANCE


@pytest.mark.parametrize("document", [[], {"page": {}}, {"status": {"indicator": 3}}, "x"])
def test_other_shapes_are_refused(document: Any) -> None:
    with pytest.raises(NotASummary):
        parse(document)


def test_the_summary_url_is_under_the_base() -> None:
    assert (
        summary_url("https://status.stripe.com/") == "https://status.stripe.com/api/v2/summary.json"
    )
    assert summary_url("https://x.io/s") == "https://x.io/s/api/v2/summary.json"
