"""The Segments page in a real browser: build a segment with the schema-generated condition
builder, watch the live count, save it and see its members and its size over time; against a
real `legato serve`.

Screenshots go to test-artifacts/ui/; the browser log must stay free of errors.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.acceptance.ui.conftest import Browsing, shot
from tests.acceptance.ui.test_console_ui import admin_get, send_batch, sign_in, wait_for_profile
from tests.conftest import Server

pytestmark = pytest.mark.slow


def _people(server: Server) -> None:
    """Three people: two on the pro plan, one of whom ordered twice."""
    ts = "2026-02-0{}T09:00:00.000Z"
    batch = [
        {
            "type": "identify",
            "userId": f"seg-{name}",
            "messageId": f"seg-id-{name}",
            "timestamp": ts.format(1),
            "traits": {"email": f"{name}@seg.example", "plan": plan},
        }
        for name, plan in (("amy", "pro"), ("ben", "pro"), ("cal", "free"))
    ]
    batch += [
        {
            "type": "track",
            "userId": "seg-amy",
            "event": "Order Completed",
            "messageId": f"seg-order-{i}",
            "timestamp": ts.format(2 + i),
            "properties": {"order_id": f"o-{i}", "revenue": 10 * (i + 1)},
        }
        for i in range(2)
    ]
    send_batch(server, batch)
    wait_for_profile(server, "amy@seg.example", 3)
    wait_for_profile(server, "cal@seg.example", 1)


def test_create_a_segment_with_the_builder_and_see_its_count(
    browsing: Browsing, console_server: Server
) -> None:
    _people(console_server)
    page = sign_in(browsing, console_server.admin_key, "/segments")
    expect(page.get_by_role("heading", level=1, name="Segments")).to_be_visible()
    page.locator(".page-header").get_by_role("button", name="New segment").click()
    builder = page.get_by_test_id("condition-builder")
    expect(builder).to_be_visible()

    page.get_by_label("Key").fill("pro_users")
    page.get_by_label("Name", exact=True).fill("Pro users")
    # The new segment starts as "all of [an event]": turn the event into a trait comparison.
    kinds = builder.get_by_label("Condition kind")
    expect(kinds).to_have_count(2)
    kinds.nth(1).select_option("trait")
    builder.get_by_label("Trait name").fill("plan")
    builder.get_by_label("Operator").select_option("eq")
    builder.get_by_label("Value").fill("pro")
    count = page.get_by_test_id("live-count-value")
    expect(count).to_have_text("2")
    expect(page.get_by_test_id("condition-json")).to_contain_text('"eq": "pro"')

    # A second condition, built from the schema too: ordered at least twice.
    builder.get_by_role("button", name="Add condition").first.click()
    expect(kinds).to_have_count(3)
    builder.get_by_label("Event name").fill("Order Completed")
    builder.get_by_label("Add an option").last.select_option("count")
    count_box = builder.get_by_role("group", name="count")
    count_box.get_by_label("Operator").select_option("gte")
    count_box.get_by_label("Value").fill("2")
    expect(count).to_have_text("1")
    shot(page, "20-segment-builder", full_page=True)

    # An empty field is flagged before asking the server; a mistake only the server can see
    # comes back with its JSON path, and nothing breaks.
    live = page.get_by_test_id("live-count")
    builder.get_by_label("Trait name").fill("")
    expect(live).to_contain_text("Fill in every field")
    builder.get_by_label("Trait name").fill("plan")
    expect(count).to_have_text("1")
    browsing.console.expect("status of 422")
    count_box.get_by_label("Value").fill("two")
    expect(live).to_contain_text("count")
    count_box.get_by_label("Value").fill("2")
    expect(count).to_have_text("1")

    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_role("heading", level=1, name="Pro users")).to_be_visible()
    expect(page.get_by_test_id("segment-members")).to_have_text("1")
    members = page.get_by_test_id("members-table")
    expect(members.get_by_role("row")).to_have_count(2)
    shot(page, "21-segment-detail", full_page=True)

    saved = admin_get(console_server, "/api/v1/segments/pro_users").json()
    assert saved["members"] == 1
    assert saved["document"]["condition"] == {
        "all": [
            {"trait": "plan", "eq": "pro"},
            {"event": "Order Completed", "count": {"gte": 2}},
        ]
    }

    # Back on the list, the segment shows with its member count.
    page.get_by_role("link", name="Segments", exact=True).first.click()
    table = page.get_by_test_id("segments-table")
    expect(table.get_by_role("link", name="Pro users")).to_be_visible()
    expect(table).to_contain_text("pro_users")


def test_size_over_time_is_drawn_from_logged_entries_and_exits(
    browsing: Browsing, console_server: Server
) -> None:
    def identify(name: str, plan: str, n: int) -> dict[str, Any]:
        return {
            "type": "identify",
            "userId": f"size-{name}",
            "messageId": f"size-{name}-{n}",
            "timestamp": f"2026-03-01T09:00:0{n}.000Z",
            "traits": {"email": f"{name}@size.example", "plan": plan},
        }

    send_batch(console_server, [identify("dot", "team", 1), identify("eli", "team", 1)])
    wait_for_profile(console_server, "eli@size.example", 1)
    with console_server.admin() as admin:
        made = admin.put(
            "/api/v1/segments/team_plan",
            json={"name": "Team plan", "condition": {"trait": "plan", "eq": "team"}},
        )
        assert made.status_code == 200, made.text
        assert made.json()["members"] == 2
    # After the segment exists: one person comes in, one leaves (each a logged change).
    send_batch(console_server, [identify("fay", "team", 2), identify("dot", "free", 3)])
    deadline = time.monotonic() + 20
    while True:
        sizes = admin_get(console_server, "/api/v1/segments/team_plan/sizes?days=90").json()
        today = sizes["days"][-1]
        if (today["entered"], today["exited"]) == (1, 1):
            break
        assert time.monotonic() < deadline, sizes
        time.sleep(0.2)
    assert today["members"] == 2
    assert [d["members"] for d in sizes["days"][:-1]] == [None] * 89

    page = sign_in(browsing, console_server.admin_key, "/segments/team_plan")
    expect(page.get_by_role("heading", level=1, name="Team plan")).to_be_visible()
    chart = page.get_by_test_id("segment-sizes").get_by_role("img")
    expect(chart).to_have_attribute(
        "aria-label", re.compile(r"^Members at the end of each day since [^:]+: [^,]+ 2$")
    )
    summary = page.get_by_test_id("segment-size-summary")
    expect(summary).to_contain_text("since the segment was created")
    expect(summary).to_contain_text("1 entered, 1 left")
    shot(page, "22-segment-size-over-time", full_page=True)
