"""The web console in a real browser against a real `legato serve` (SQLite).

Each test drives the console as a person would (keyboard, mouse, drag and drop), checks what the
server holds through the admin API, saves screenshots under test-artifacts/ui/, and fails if the
browser console logged an error the test did not announce. Timings (first load, builder
interactions with 200 nodes) are written to test-artifacts/ui/perf.json.
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Locator, Page, expect

from legato.domain.journey_validation import graph_problems
from legato.domain.journeys import parse_journey
from tests.acceptance.ui.conftest import ARTIFACTS, VIEWPORT, Browsing, ConsoleLog, shot
from tests.conftest import Server

pytestmark = pytest.mark.slow

PERF_FILE = ARTIFACTS / "perf.json"


def record_perf(**numbers: float) -> None:
    """Merge measured numbers into test-artifacts/ui/perf.json."""
    PERF_FILE.parent.mkdir(parents=True, exist_ok=True)
    current = json.loads(PERF_FILE.read_text()) if PERF_FILE.exists() else {}
    current.update({k: round(v, 1) for k, v in numbers.items()})
    PERF_FILE.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def sign_in(b: Browsing, key: str, path: str = "/") -> Page:
    """Open the console and sign in with `key` through the login form."""
    page = b.page
    page.goto(b.base_url + path)
    page.get_by_label("Admin key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    return page


def nav(page: Page, label: str) -> None:
    """Follow a link of the main navigation."""
    page.get_by_role("navigation", name="Main").get_by_role("link", name=label, exact=True).click()
    expect(page.locator("h1").first).to_be_visible()


def admin_get(server: Server, path: str) -> httpx.Response:
    """GET on the admin API with the workspace's admin key."""
    with server.admin() as admin:
        return admin.get(path)


def openapi_paths(server: Server) -> set[str]:
    return set(httpx.get(server.url + "/openapi.json", timeout=10).json()["paths"])


def has_journeys_api(server: Server) -> bool:
    return any(p.startswith("/api/v1/journeys/{") for p in openapi_paths(server))


# --------------------------------------------------------------------------------------------
# Sign-in, first load, navigation


def test_sign_in_rejects_a_wrong_key_then_accepts_the_admin_key(
    browsing: Browsing, console_server: Server
) -> None:
    page = browsing.page
    page.goto(browsing.base_url + "/")
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    expect(page.get_by_label("Admin key")).to_be_focused()
    shot(page, "01-login")

    # The browser logs the server's 401 for the wrong key: announced, so it is not a failure.
    browsing.console.expect(r"status of 401")
    page.get_by_label("Admin key").fill("ak_not_a_real_key")
    page.keyboard.press("Enter")
    error = page.get_by_role("alert")
    expect(error).to_contain_text("was not accepted")
    expect(page.get_by_label("Admin key")).to_have_attribute("aria-invalid", "true")
    shot(page, "02-login-wrong-key")

    page.get_by_label("Admin key").fill(console_server.write_key)
    browsing.console.expect(r"status of 401")
    page.get_by_role("button", name="Sign in").click()
    expect(error).to_contain_text("write key")

    page.get_by_label("Admin key").fill(console_server.admin_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_role("link", name="Home", exact=True)).to_have_attribute(
        "aria-current", "page"
    )
    # The key lives in sessionStorage: a reload keeps the session.
    page.reload()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    shot(page, "03-home")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


#: Navigation timing and paint metrics of the current page (largest contentful paint included).
LOAD_METRICS = """async () => {
  const lcp = await new Promise(resolve => {
    new PerformanceObserver(list => {
      const entries = list.getEntries();
      resolve(entries[entries.length - 1].startTime);
    }).observe({type: 'largest-contentful-paint', buffered: true});
    setTimeout(() => resolve(null), 2000);
  });
  const nav = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  return {load: nav.loadEventEnd, fcp: fcp ? fcp.startTime : null, lcp: lcp ?? 1e9};
}"""


def cold_load(browser: Browser, url: str, admin_key: str | None) -> dict[str, float]:
    """Load the console in a fresh context (empty cache); signed in when given a key."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    log = ConsoleLog()
    page.on("console", lambda m: log.messages.append((m.type, m.text)))
    page.on("pageerror", lambda e: log.messages.append(("pageerror", str(e))))
    try:
        if admin_key:
            key = json.dumps(admin_key)
            page.add_init_script(f"sessionStorage.setItem('legato.adminKey', {key})")
            page.goto(url + "/")
            expect(page.get_by_role("heading", name="Overview")).to_be_visible()
            expect(page.locator(".tile-value").first).not_to_have_text("…")
        else:
            page.goto(url + "/")
            expect(page.get_by_label("Admin key")).to_be_visible()
        metrics: dict[str, float] = page.evaluate(LOAD_METRICS)
    finally:
        context.close()
    assert not log.unexpected_errors(), log.messages
    return metrics


def test_first_load_is_under_a_second(browser: Browser, console_server: Server) -> None:
    """Largest contentful paint of a cold load, login form and signed-in overview.

    Three cold loads each; the best must be under a second (the machine is shared, so single
    runs are noisy), and the median is reported next to it.
    """
    numbers: dict[str, float] = {}
    for name, key in (("login", None), ("home", console_server.admin_key)):
        runs = [cold_load(browser, console_server.url, key) for _ in range(3)]
        lcps = sorted(r["lcp"] for r in runs)
        loads = sorted(r["load"] for r in runs)
        numbers |= {
            f"first_load_{name}_lcp_best_ms": lcps[0],
            f"first_load_{name}_lcp_median_ms": lcps[1],
            f"first_load_{name}_load_event_median_ms": loads[1],
        }
        assert lcps[0] < 1000, (name, runs)
        assert loads[0] < 1000, (name, runs)
    record_perf(**numbers)


def test_every_page_renders_with_a_heading_and_no_broken_state(
    browsing: Browsing, console_server: Server
) -> None:
    page = sign_in(browsing, console_server.admin_key)
    pages = [
        ("Profiles", "Profiles", "04-profiles-empty"),
        ("Segments", "Segments", "05-segments"),
        ("Journeys", "Journeys", "06-journeys"),
        ("Templates", "Templates", "07-templates"),
        ("Messages", "Messages", "08-messages"),
        ("Settings", "Settings", "09-settings"),
        ("Home", "Overview", "10-home"),
    ]
    for link, heading, name in pages:
        nav(page, link)
        expect(page.get_by_role("heading", level=1, name=heading)).to_be_visible()
        expect(page.get_by_role("link", name=link, exact=True)).to_have_attribute(
            "aria-current", "page"
        )
        expect(page.locator(".state-loading")).to_have_count(0)
        # No error state anywhere: missing capabilities say so, they do not fail.
        expect(page.locator(".state-error")).to_have_count(0)
        shot(page, name, full_page=True)
    # Capabilities that have not landed explain themselves.
    nav(page, "Segments")
    if "/api/v1/segments" not in openapi_paths(console_server):
        expect(page.get_by_test_id("not-available").first).to_contain_text("Segments arrive")
    # Deep links work: the server answers client routes with the console.
    page.goto(browsing.base_url + "/settings")
    expect(page.get_by_role("heading", level=1, name="Settings")).to_be_visible()
    page.goto(browsing.base_url + "/no/such/page")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()


def test_keyboard_reaches_the_navigation_and_skips_to_content(
    browsing: Browsing, console_server: Server
) -> None:
    page = sign_in(browsing, console_server.admin_key)
    page.locator("body").press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    page.keyboard.press("Tab")  # the brand link
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Home", exact=True)).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Profiles", exact=True)).to_be_focused()
    # The focus ring is visible (a box-shadow), not suppressed.
    profiles_link = page.get_by_role("link", name="Profiles", exact=True)
    assert profiles_link.evaluate("el => getComputedStyle(el).boxShadow") != "none"
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1, name="Profiles")).to_be_visible()


# --------------------------------------------------------------------------------------------
# Settings


def test_settings_shows_the_workspace_and_creates_and_revokes_a_key(
    browsing: Browsing, console_server: Server
) -> None:
    page = sign_in(browsing, console_server.admin_key)
    nav(page, "Settings")
    workspace = admin_get(console_server, "/api/v1/workspace").json()
    expect(page.get_by_test_id("workspace-name")).to_have_text(workspace["name"])
    keys_table = page.get_by_role("table", name="API keys")
    expect(keys_table.get_by_role("row")).to_have_count(3)  # header + default write + admin

    form = page.get_by_role("form", name="Create a key")
    form.get_by_label("Kind").select_option("admin")
    form.get_by_label("Role").select_option("viewer")
    form.get_by_label("Label").fill("Analyst laptop")
    form.get_by_role("button", name="Create key").click()
    secret = page.get_by_test_id("new-key").locator("code")
    expect(secret).to_have_text(re.compile(r"^ak_\w+$"))
    created = secret.inner_text()
    expect(keys_table.get_by_role("row", name="Analyst laptop")).to_contain_text("viewer")
    shot(page, "11-settings-key-created", full_page=True)

    # The server agrees, and the new key works as a viewer key.
    listed = admin_get(console_server, "/api/v1/keys").json()["keys"]
    mine = next(k for k in listed if k["label"] == "Analyst laptop")
    assert (mine["kind"], mine["role"], mine["revoked_ms"]) == ("admin", "viewer", None)
    viewer = httpx.get(
        console_server.url + "/api/v1/workspace",
        headers={"Authorization": f"Bearer {created}"},
        timeout=10,
    )
    assert viewer.json()["role"] == "viewer"

    row = keys_table.get_by_role("row", name="Analyst laptop")
    row.get_by_role("button", name="Revoke Analyst laptop").click()
    row.get_by_role("button", name="Revoke now").click()
    expect(keys_table.get_by_role("row", name="Analyst laptop")).to_contain_text("revoked")
    listed = admin_get(console_server, "/api/v1/keys").json()["keys"]
    assert next(k for k in listed if k["label"] == "Analyst laptop")["revoked_ms"] is not None


# --------------------------------------------------------------------------------------------
# Profiles


def send_batch(server: Server, batch: list[dict[str, Any]]) -> None:
    auth = base64.b64encode(f"{server.write_key}:".encode()).decode()
    answer = httpx.post(
        server.url + "/v1/batch",
        json={"batch": batch},
        headers={"Authorization": f"Basic {auth}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["rejected"] == []


def wait_for_profile(server: Server, email: str, events: int) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    with server.admin() as admin:
        while True:
            found = admin.get("/api/v1/profiles/lookup", params={"email": email})
            if found.status_code == 200 and found.json()["event_count"] >= events:
                return dict(found.json())
            assert time.monotonic() < deadline, found.text
            time.sleep(0.2)


def test_profiles_search_by_email_opens_the_360_view_with_its_timeline(
    browsing: Browsing, console_server: Server
) -> None:
    ts = "2026-01-15T10:0{}:00.000Z"
    send_batch(
        console_server,
        [
            {
                "type": "identify",
                "userId": "ui-ann",
                "anonymousId": "anon-ann",
                "messageId": "ui-m1",
                "timestamp": ts.format(1),
                "traits": {"email": "Ann.UI@example.com", "first_name": "Ann", "plan": "pro"},
            },
            {
                "type": "track",
                "userId": "ui-ann",
                "event": "Product Viewed",
                "messageId": "ui-m2",
                "timestamp": ts.format(2),
                "properties": {"sku": "SKU-1", "price": 19.9},
            },
            {
                "type": "track",
                "userId": "ui-ann",
                "event": "Order Completed",
                "messageId": "ui-m3",
                "timestamp": ts.format(3),
                "properties": {"order_id": "o-1", "revenue": 42.5},
            },
            {
                "type": "identify",
                "userId": "ui-bob",
                "messageId": "ui-m4",
                "timestamp": ts.format(4),
                "traits": {"email": "bob.ui@example.com", "first_name": "Bob", "plan": "free"},
            },
        ],
    )
    profile = wait_for_profile(console_server, "ann.ui@example.com", 3)
    wait_for_profile(console_server, "bob.ui@example.com", 1)

    page = sign_in(browsing, console_server.admin_key)
    nav(page, "Profiles")
    table = page.get_by_test_id("profiles-table")
    expect(table.get_by_role("link", name="Ann")).to_be_visible()
    expect(table.get_by_role("link", name="Bob")).to_be_visible()
    shot(page, "12-profiles-list", full_page=True)

    # Filter by trait: only Ann has plan = pro.
    page.get_by_label("Search by").select_option("trait")
    page.get_by_label("Trait").fill("plan")
    page.get_by_label("Value").fill("pro")
    page.get_by_role("button", name="Search").click()
    expect(table.get_by_role("row")).to_have_count(2)
    expect(table).to_contain_text("Ann")

    # Look up by email (any case), landing on the 360° view.
    page.get_by_label("Search by").select_option("email")
    page.get_by_label("Identifier").fill("ANN.ui@Example.com")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("profile-name")).to_have_text("Ann")
    assert page.url.endswith(f"/profiles/{profile['id']}")
    identities = page.get_by_test_id("identities")
    for value in ("ui-ann", "anon-ann", "ann.ui@example.com"):
        expect(identities).to_contain_text(value)
    expect(page.get_by_test_id("traits")).to_contain_text("plan")
    timeline = page.get_by_test_id("timeline")
    items = timeline.locator(".tl-title")
    expect(items).to_have_count(3)
    # Newest first.
    expect(items).to_have_text(["Order Completed", "Product Viewed", "Identified"])
    timeline.get_by_text("2 properties").first.click()
    expect(timeline).to_contain_text("revenue")
    shot(page, "13-profile-360", full_page=True)


# --------------------------------------------------------------------------------------------
# The journey builder


def drag_from_palette(page: Page, step: str, x: float, y: float) -> None:
    """HTML5 drag of a palette item onto the canvas at (x, y) relative to the canvas."""
    page.get_by_test_id(f"palette-{step}").drag_to(
        page.get_by_test_id("canvas"), target_position={"x": x, "y": y}
    )


def connect(page: Page, source: Locator, target: Locator) -> None:
    """Drag from a source handle to a target handle, as a person connects two steps."""
    a = source.bounding_box()
    z = target.bounding_box()
    assert a and z
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    page.mouse.move(z["x"] + z["width"] / 2, z["y"] + z["height"] / 2, steps=12)
    page.mouse.up()


def out_handle(page: Page, node: str, handle: str = "next") -> Locator:
    return page.get_by_test_id(f"node-{node}").locator(
        f'.react-flow__handle.source[data-handleid="{handle}"]'
    )


def in_handle(page: Page, node: str) -> Locator:
    return page.get_by_test_id(f"node-{node}").locator(".react-flow__handle.target")


def open_new_journey(page: Page) -> None:
    nav(page, "Journeys")
    page.locator(".page-header").get_by_role("button", name="New journey").click()
    expect(page.get_by_test_id("builder")).to_be_visible()
    expect(page.get_by_test_id("node-trigger")).to_be_visible()


def test_build_trigger_wait_message_by_drag_and_drop(
    browsing: Browsing, console_server: Server, tmp_path: Path
) -> None:
    page = sign_in(browsing, console_server.admin_key)
    open_new_journey(page)
    inspector = page.get_by_test_id("inspector")
    problems = page.get_by_test_id("problems")

    # Journey settings (nothing selected).
    inspector.get_by_label("Name").fill("UI cart")
    inspector.get_by_label("Key").fill("ui_cart")

    # Trigger: the event that starts the journey.
    page.get_by_test_id("node-trigger").click()
    expect(inspector).to_have_attribute("data-node", "__trigger__")
    inspector.get_by_label("Event").fill("Checkout Started")

    # Drag a wait and a message from the palette onto the canvas.
    box = page.get_by_test_id("canvas").bounding_box()
    assert box
    drag_from_palette(page, "wait", box["width"] / 2, box["height"] * 0.38)
    expect(page.get_by_test_id("node-wait_1")).to_be_visible()
    drag_from_palette(page, "message", box["width"] / 2, box["height"] * 0.68)
    expect(page.get_by_test_id("node-message_1")).to_be_visible()
    # Not yet valid: the trigger is not connected, the message has no channel or template.
    expect(page.get_by_test_id("node-trigger")).to_have_attribute("data-valid", "false")
    expect(page.get_by_test_id("node-message_1")).to_have_attribute("data-valid", "false")
    expect(page.get_by_test_id("node-message_1")).to_contain_text("Channel is required")
    expect(problems).to_contain_text("problem")
    shot(page, "14-builder-dropped")

    # Connect trigger → wait → message by dragging between handles.
    connect(page, out_handle(page, "trigger"), in_handle(page, "wait_1"))
    expect(page.get_by_test_id("node-trigger")).to_have_attribute("data-valid", "true")
    connect(page, out_handle(page, "wait_1"), in_handle(page, "message_1"))
    expect(page.locator(".react-flow__edge")).to_have_count(2)

    # Configure the message in the side panel.
    page.get_by_test_id("node-message_1").click()
    expect(inspector).to_have_attribute("data-node", "message_1")
    inspector.get_by_label("Channel").fill("email")
    inspector.get_by_label("Template").fill("cart_email")
    expect(page.get_by_test_id("node-message_1")).to_have_attribute("data-valid", "true")
    expect(page.get_by_test_id("node-message_1")).to_contain_text("email · cart_email")
    # Only a warning is left: the message's output is open (runs end there).
    expect(problems).to_contain_text("1 warning")

    # Keyboard: with the message selected, pressing a palette item adds it connected after it.
    page.get_by_test_id("palette-exit").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("node-exit_1")).to_be_visible()
    expect(problems).to_have_text("Valid")
    expect(page.locator(".react-flow__edge")).to_have_count(3)
    shot(page, "15-builder-valid")

    # Undo / redo with the keyboard and the buttons.
    page.get_by_test_id("canvas").locator(".react-flow__pane").click(position={"x": 10, "y": 10})
    page.keyboard.press("Control+z")
    expect(page.get_by_test_id("node-exit_1")).to_have_count(0)
    expect(problems).to_contain_text("1 warning")
    page.keyboard.press("Control+Shift+z")
    expect(page.get_by_test_id("node-exit_1")).to_be_visible()
    page.get_by_role("button", name="Undo").click()
    expect(page.get_by_test_id("node-exit_1")).to_have_count(0)
    page.get_by_role("button", name="Redo").click()
    expect(problems).to_have_text("Valid")

    # Auto-layout keeps the document, moves the nodes top-down.
    page.get_by_role("button", name="Auto-layout").click()
    trigger_y = page.get_by_test_id("node-trigger").bounding_box()
    exit_y = page.get_by_test_id("node-exit_1").bounding_box()
    assert trigger_y and exit_y and trigger_y["y"] < exit_y["y"]

    # The YAML view shows the same document, which the server's own parser accepts.
    page.get_by_role("button", name="YAML", exact=True).click()
    view = page.get_by_test_id("yaml-view")
    expect(view).to_contain_text("kind: Journey")
    text = view.inner_text()
    assert yaml.safe_load(text) == {
        "kind": "Journey",
        "key": "ui_cart",
        "name": "UI cart",
        "trigger": {"event": "Checkout Started"},
        "nodes": [
            {"id": "wait_1", "type": "wait", "duration": "1d", "next": "message_1"},
            {
                "id": "message_1",
                "type": "message",
                "channel": "email",
                "template": "cart_email",
                "next": "exit_1",
            },
            {"id": "exit_1", "type": "exit"},
        ],
    }
    journey = parse_journey(text)
    assert graph_problems(journey) == []
    shot(page, "16-builder-yaml")

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download").click()
    download = download_info.value
    assert download.suggested_filename == "ui_cart.yaml"
    saved = tmp_path / "ui_cart.yaml"
    download.save_as(saved)
    assert saved.read_text() == text.rstrip("\n") + "\n"

    # Save: on a server without the journeys API the builder says so and keeps the draft.
    page.get_by_role("button", name="Save draft").click()
    banner = page.get_by_test_id("builder-banner")
    if has_journeys_api(console_server):
        expect(banner).to_contain_text("saved")
        stored = admin_get(console_server, "/api/v1/journeys/ui_cart")
        assert stored.status_code == 200, stored.text
    else:
        expect(banner).to_contain_text("no journeys API")
        page.reload()
        expect(page.get_by_test_id("node-message_1")).to_contain_text("email · cart_email")
        expect(page.get_by_test_id("builder-banner")).to_contain_text("Restored")


def test_builder_shows_server_rules_on_the_nodes_for_invalid_edits(
    browsing: Browsing, console_server: Server
) -> None:
    page = sign_in(browsing, console_server.admin_key)
    open_new_journey(page)
    page.get_by_role("button", name="YAML", exact=True).click()
    page.get_by_role("button", name="Edit").click()
    page.get_by_test_id("yaml-editor").fill(
        "kind: Journey\nkey: loops\ntrigger: {event: Signed Up}\nnodes:\n"
        "  - {id: a, type: branch, condition: {trait: plan, eq: pro}, then: b, else: ghost}\n"
        "  - {id: b, type: emit_event, event: Looped, next: a}\n"
        "  - {id: lonely, type: wait, duration: 1d}\n"
    )
    page.get_by_role("button", name="Apply to canvas").click()
    page.get_by_role("button", name="Close YAML view").click()
    # Dangling edge, a loop without a wait, an unreachable node: each shown on its node.
    expect(page.get_by_test_id("node-a")).to_have_attribute("data-valid", "false")
    page.get_by_test_id("node-a").click()
    inspector = page.get_by_test_id("inspector")
    expect(inspector).to_contain_text("“else” goes to “ghost”, which does not exist")
    expect(inspector).to_contain_text("loop with no wait")
    page.get_by_test_id("node-lonely").click()
    expect(inspector).to_contain_text("Unreachable")
    shot(page, "17-builder-problems")
    # The server's own rules flag the same nodes in the document the builder shows.
    page.get_by_role("button", name="YAML", exact=True).click()
    journey = parse_journey(page.get_by_test_id("yaml-view").inner_text())
    assert {p.node for p in graph_problems(journey)} == {"a", "lonely"}


def big_journey(n: int = 200) -> dict[str, Any]:
    """A valid journey of exactly `n` nodes: blocks of wait → message → branch → two arms."""
    nodes: list[dict[str, Any]] = []
    i = 0
    while len(nodes) < n - 1:
        after = f"w{i + 1}"
        if n - 1 - len(nodes) >= 5:
            nodes += [
                {"id": f"w{i}", "type": "wait", "duration": "1h", "next": f"m{i}"},
                {"id": f"m{i}", "type": "message", "channel": "email", "template": "t"},
                {
                    "id": f"b{i}",
                    "type": "branch",
                    "condition": {"trait": "plan", "eq": "pro"},
                    "then": f"p{i}",
                    "else": f"u{i}",
                },
                {"id": f"p{i}", "type": "message", "channel": "push", "template": "t"},
                {"id": f"u{i}", "type": "update_profile", "set": {"seen": i}, "next": after},
            ]
            nodes[-4]["next"] = f"b{i}"
            nodes[-2]["next"] = after
        else:
            nodes.append({"id": f"w{i}", "type": "wait", "duration": "1h", "next": after})
        i += 1
    # The block after the last one does not exist: its arrows go to the exit instead.
    for node in nodes:
        for edge in ("next", "then", "else"):
            if node.get(edge) == f"w{i}":
                node[edge] = "done"
    nodes.append({"id": "done", "type": "exit"})
    return {"kind": "Journey", "key": "big", "trigger": {"event": "Signed Up"}, "nodes": nodes}


MEASURE = """
async ({action, until}) => {
  const frame = () => new Promise(r => requestAnimationFrame(() => r()));
  const t0 = performance.now();
  await (new Function('return (async () => {' + action + '})()'))();
  for (let i = 0; i < 600; i++) {
    if (new Function('return (' + until + ')')()) return performance.now() - t0;
    await frame();
  }
  throw new Error('condition never held: ' + until);
}
"""


#: Type into the selected step's Label field as React sees it (native setter + input event).
SET_LABEL = (
    "const input = document.querySelector('input[name=\"label\"]');"
    "const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;"
    "setter.call(input, 'VALUE'); input.dispatchEvent(new Event('input', {bubbles: true}));"
)
#: Ids of the nodes drawn inside the canvas right now.
VISIBLE_NODES = """() => {
  const box = document.querySelector('[data-testid="canvas"]').getBoundingClientRect();
  return [...document.querySelectorAll('.react-flow__node')].filter(n => {
    const r = n.getBoundingClientRect();
    return r.top > box.top + 20 && r.bottom < box.bottom - 40
      && r.left > box.left && r.right < box.right;
  }).map(n => n.dataset.id);
}"""
CLICK_AUTO_LAYOUT = (
    "[...document.querySelectorAll('button')]"
    ".find(b => b.textContent.includes('Auto-layout')).click()"
)


def measure(page: Page, action: str, until: str) -> float:
    """Milliseconds from running `action` in the page until `until` holds (checked per frame)."""
    return float(page.evaluate(MEASURE, {"action": action, "until": until}))


def test_builder_stays_responsive_with_200_nodes(
    browsing: Browsing, console_server: Server
) -> None:
    document = big_journey(200)
    assert len(document["nodes"]) == 200
    assert graph_problems(parse_journey(document)) == []

    page = browsing.page
    page.add_init_script(
        "window.__long = []; new PerformanceObserver(l => l.getEntries().forEach(e =>"
        " window.__long.push(e.duration))).observe({type: 'longtask', buffered: true});"
    )
    sign_in(browsing, console_server.admin_key)
    open_new_journey(page)
    page.get_by_role("button", name="YAML", exact=True).click()
    page.get_by_role("button", name="Edit").click()
    page.get_by_test_id("yaml-editor").fill(yaml.safe_dump(document, sort_keys=False))
    started = time.perf_counter()
    page.get_by_role("button", name="Apply to canvas").click()
    # Off-screen nodes are not in the DOM (only visible ones render); the overview map has all.
    expect(page.locator(".react-flow__minimap-node")).to_have_count(201)
    load_ms = (time.perf_counter() - started) * 1000
    expect(page.get_by_test_id("problems")).to_have_text("Valid")
    page.get_by_role("button", name="Close YAML view").click()
    page.wait_for_timeout(300)
    shot(page, "18-builder-200-nodes")
    # Work on a message and a wait of a block in view.
    visible = page.evaluate(VISIBLE_NODES)
    block = next(i for i in range(40) if f"m{i}" in visible and f"w{i}" in visible)
    m, w = f"m{block}", f"w{block}"
    page.evaluate("window.__long = []")

    node_m = f"document.querySelector('[data-testid=\"node-{m}\"]')"
    m_title = f"{node_m}?.querySelector('.jnode-title')?.textContent"
    select_ms = measure(
        page,
        f"{node_m}.click()",
        f"document.querySelector('[data-testid=\"inspector\"]')?.dataset.node === '{m}'",
    )
    rename = SET_LABEL.replace("VALUE", "Renamed step")
    edit_ms = measure(page, rename, f"{m_title} === 'Renamed step'")
    undo_ms = measure(
        page,
        "window.dispatchEvent(new KeyboardEvent('keydown', {key: 'z', ctrlKey: true}))",
        f"{m_title} === '{m}'",
    )
    # A drag of one node across the canvas (20 mouse moves).
    node = page.get_by_test_id(f"node-{w}").bounding_box()
    assert node
    started = time.perf_counter()
    page.mouse.move(node["x"] + 30, node["y"] + 12)
    page.mouse.down()
    page.mouse.move(node["x"] + 160, node["y"] + 90, steps=20)
    page.mouse.up()
    drag_ms = (time.perf_counter() - started) * 1000
    moved = page.get_by_test_id(f"node-{w}").bounding_box()
    assert moved and abs(moved["x"] - node["x"]) > 50
    # Auto-layout puts it back in its layer.
    w5 = f"document.querySelector('[data-id=\"{w}\"]').style.transform"
    layout_ms = measure(
        page,
        f"window.__before = {w5}; {CLICK_AUTO_LAYOUT}",
        f"{w5} !== window.__before",
    )
    longest = max(page.evaluate("window.__long"), default=0.0)

    record_perf(
        builder_200_apply_document_ms=load_ms,
        builder_200_select_node_ms=select_ms,
        builder_200_edit_field_ms=edit_ms,
        builder_200_undo_ms=undo_ms,
        builder_200_auto_layout_ms=layout_ms,
        builder_200_drag_20_moves_ms=drag_ms,
        builder_200_longest_task_ms=longest,
    )
    # Responsive: each interaction well under the ~100 ms a person perceives as instant,
    # with head-room for a busy 2-core CI machine.
    for name, ms in (("select", select_ms), ("edit", edit_ms), ("undo", undo_ms)):
        assert ms < 150, (name, ms)
    assert layout_ms < 400, layout_ms
    assert longest < 250, longest


def test_publish_then_an_event_moves_the_counts_on_the_canvas(
    browsing: Browsing, console_server: Server
) -> None:
    """Publish from the builder; a tracked event enters a run; the wait's count goes to 1.

    Written against the planned journeys API (`PUT /api/v1/journeys/{key}`, `POST .../publish`,
    `GET .../stats` → `{nodes: {id: {entered, exited, waiting, converted}}}`): it runs as soon
    as the server documents those routes.
    """
    if not has_journeys_api(console_server):
        pytest.skip("the journeys API is not on this server yet (enable with the journey engine)")
    page = sign_in(browsing, console_server.admin_key)
    open_new_journey(page)
    page.get_by_role("button", name="YAML", exact=True).click()
    page.get_by_role("button", name="Edit").click()
    page.get_by_test_id("yaml-editor").fill(
        "kind: Journey\nkey: ui_live\nname: UI live\ntrigger: {event: UI Live Started}\nnodes:\n"
        "  - {id: hold, type: wait, duration: 7d, next: done}\n"
        "  - {id: done, type: exit}\n"
    )
    page.get_by_role("button", name="Apply to canvas").click()
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_test_id("builder-banner")).to_contain_text("Published")
    expect(page.get_by_test_id("builder").locator(".badge").first).to_have_text("published")

    send_batch(
        console_server,
        [{"type": "track", "userId": "ui-live", "event": "UI Live Started", "messageId": "ui-l1"}],
    )
    stats = page.get_by_test_id("node-hold").get_by_test_id("node-stats")
    expect(stats).to_have_attribute(
        "aria-label", re.compile(r"entered 1, waiting 1"), timeout=30_000
    )
    shot(page, "19-builder-live-counts")
