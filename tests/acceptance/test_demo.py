"""`legato demo` as a user runs it: a workspace full of unified profiles, keys to log in with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from legato.demo.dataset import estimated_messages

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "journeys"


def legato(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "legato", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def kinds(profile: dict[str, Any], kind: str) -> list[str]:
    return [i["value"] for i in profile["identities"] if i["kind"] == kind]


@pytest.mark.slow
def test_demo_loads_unified_profiles_and_reuses_its_workspace(tmp_path: Path) -> None:
    env = {**os.environ, "LEGATO_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}"}
    result = legato("demo", "--customers", "500", "--no-serve", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "Generating and ingesting events" in result.stderr
    assert "Building profiles" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["workspace"] == "demo" and summary["workspace_created"] is True
    assert summary["admin_key"].startswith("ak_") and summary["write_key"].startswith("wk_")
    assert summary["console_url"].startswith("http://")
    assert summary["rejected"] == 0
    assert summary["messages"] >= 0.85 * estimated_messages(500, 90)
    assert summary["admin_key"] in result.stderr  # shown to the person at the keyboard
    # Every example journey is published, or kept as a draft with the reason.
    examples = [*EXAMPLES.glob("*.yaml"), *EXAMPLES.glob("*.yml")]
    assert summary["journeys"], summary["journeys_unpublished"]
    assert len(summary["journeys"]) + len(summary["journeys_unpublished"]) == len(examples)
    # The demo defines what they read, so every one is published, and the live moment after
    # publishing puts people in each (win-back: everyone lapsed when its segment turned on).
    assert summary["journeys_unpublished"] == {}
    assert summary["lapsed_customers"] > 0
    assert summary["live_messages"] > 0
    empty = [key for key, entered in summary["journey_entries"].items() if entered == 0]
    assert sorted(summary["journey_entries"]) == sorted(summary["journeys"])
    assert not empty, f"example journeys nobody entered in the demo: {empty}"
    listed = legato(
        "profiles",
        "list",
        "--trait",
        "country=ES",
        "--limit",
        "500",
        "--json",
        env=env,
        cwd=tmp_path,
    )
    assert listed.returncode == 0, listed.stderr
    profiles = json.loads(listed.stdout)["profiles"]
    assert len(profiles) > 50
    assert all(p["traits"]["country"] == "ES" for p in profiles)
    customers = [p for p in profiles if kinds(p, "user_id")]
    # Each customer is one profile holding every identifier: userId, email, phone, devices.
    assert all(kinds(p, "email") and kinds(p, "phone") for p in customers)
    devices = [p for p in customers if len(kinds(p, "anonymous_id")) >= 2]
    assert devices, "no customer has two devices linked"
    assert any(p["merged_from"] for p in customers), "no anonymous profile was merged"

    person = max(devices, key=lambda p: p["event_count"])
    assert person["event_count"] > 5
    for flag, value in (
        ("--user-id", kinds(person, "user_id")[0]),
        ("--email", person["traits"]["email"].upper()),
        ("--anonymous-id", kinds(person, "anonymous_id")[-1]),
    ):
        got = legato("profiles", "get", flag, value, "--json", env=env, cwd=tmp_path)
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout)["id"] == person["id"]

    again = legato("demo", "--customers", "1", "--no-serve", "--json", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["workspace_created"] is False
    assert second["workspace_id"] == summary["workspace_id"]
    assert second["admin_key"] != summary["admin_key"]


def test_demo_refuses_a_bad_size_with_a_readable_error(tmp_path: Path) -> None:
    env = {**os.environ, "LEGATO_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}"}
    result = legato("demo", "--customers", "0", "--no-serve", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "customers" in result.stderr and "Traceback" not in result.stderr
