"""Simulation results drawn on a draft in the journey builder, in a real browser against a real
`legato serve`: the server replays the logged events through the document on the canvas.

Screenshots go to test-artifacts/ui/; the browser log must stay free of errors.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.acceptance.ui.conftest import Browsing, shot
from tests.acceptance.ui.test_console_ui import send_batch, sign_in, wait_for_profile
from tests.conftest import Server

pytestmark = pytest.mark.slow

JOURNEY = {
    "key": "sim_cart",
    "name": "Simulated cart reminder",
    "trigger": {"event": "Cart Viewed"},
    "nodes": [
        {
            "id": "big",
            "type": "branch",
            "condition": {"event": "Cart Viewed", "where": [{"property": "value", "gte": 100}]},
            "then": "wait_big",
            "else": "done",
        },
        {"id": "wait_big", "type": "wait", "duration": "60d", "next": "done"},
        {"id": "done", "type": "exit"},
    ],
}


def test_simulate_a_draft_and_see_the_counts_on_its_nodes(
    browsing: Browsing, console_server: Server
) -> None:
    # Three people viewed a cart two days ago; two carts were worth at least 100.
    at = (datetime.now(UTC) - timedelta(days=2)).isoformat().replace("+00:00", "Z")
    people = (("ann", 150), ("bob", 120), ("cy", 20))
    batch = [
        {
            "type": "identify",
            "userId": f"sim-{who}",
            "messageId": f"sim-id-{who}",
            "timestamp": at,
            "traits": {"email": f"{who}@sim.example"},
        }
        for who, _ in people
    ]
    batch += [
        {
            "type": "track",
            "userId": f"sim-{who}",
            "event": "Cart Viewed",
            "messageId": f"sim-cart-{who}",
            "timestamp": at,
            "properties": {"value": value},
        }
        for who, value in people
    ]
    send_batch(console_server, batch)
    wait_for_profile(console_server, "cy@sim.example", 2)
    with console_server.admin() as admin:
        saved = admin.put("/api/v1/journeys/sim_cart", json=JOURNEY)
        assert saved.status_code < 300, saved.text
        # The API answers the same numbers the canvas will show.
        body = admin.post("/api/v1/journeys/sim_cart/simulate", json={"since": "30d"}).json()
    assert body["entered"] == 3
    assert body["nodes"]["wait_big"]["people"] == 2

    page = sign_in(browsing, console_server.admin_key, "/journeys/sim_cart")
    expect(page.get_by_test_id("node-wait_big")).to_be_visible()
    expect(page.get_by_test_id("node-sim")).to_have_count(0)
    page.get_by_role("button", name="Simulate").click()
    panel = page.get_by_test_id("simulation-panel")
    panel.get_by_role("button", name="Run simulation").click()
    expect(panel.get_by_test_id("sim-entered")).to_have_text("3")
    expect(page.get_by_test_id("node-trigger").get_by_test_id("node-sim")).to_contain_text(
        "3 people"
    )
    expect(page.get_by_test_id("node-big").get_by_test_id("node-sim")).to_contain_text("3 people")
    wait = page.get_by_test_id("node-wait_big").get_by_test_id("node-sim")
    expect(wait).to_contain_text("2 people")
    expect(wait).to_contain_text("2 still waiting")
    shot(page, "40-builder-simulation")

    # Editing the draft marks the results stale; clearing removes them from the canvas.
    page.get_by_test_id("node-done").click()
    page.keyboard.press("Delete")
    expect(page.get_by_test_id("node-done")).to_have_count(0)
    page.get_by_role("button", name="Simulate").click()
    expect(panel).to_contain_text("The draft changed since this simulation")
    panel.get_by_role("button", name="Clear from the canvas").click()
    expect(page.get_by_test_id("node-sim")).to_have_count(0)
