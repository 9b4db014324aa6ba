"""The CLI as a user runs it: readable errors, exit codes, one engine process on SQLite."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_server, stop_server


def legato(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "legato", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_workspace_create_json_and_duplicate(tmp_path: Path) -> None:
    env = {**os.environ, "LEGATO_DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}"}
    first = legato("workspace", "create", "shop", "--json", env=env)
    assert first.returncode == 0, first.stderr
    body = json.loads(first.stdout)
    assert set(body) >= {"workspace_id", "write_key", "admin_key"}
    again = legato("workspace", "create", "shop", "--json", env=env)
    assert again.returncode == 1 and "exists already" in again.stderr
    assert "Traceback" not in again.stderr


def test_bad_database_url_is_a_readable_error(tmp_path: Path) -> None:
    env = {**os.environ, "LEGATO_DATABASE_URL": "mysql://nope"}
    result = legato("workspace", "list", env=env)
    assert result.returncode == 2 and "unsupported database" in result.stderr
    assert "Traceback" not in result.stderr


def test_second_engine_process_on_sqlite_is_refused(tmp_path: Path) -> None:
    srv = start_server(f"sqlite:///{tmp_path / 'l.db'}", tmp_path)
    try:
        second = legato("serve", "--port", "1", env=srv.env)
        assert second.returncode == 1 and "only one `legato serve`" in second.stderr.replace(
            "\n", " "
        )
        assert "Traceback" not in second.stderr
    finally:
        stop_server(srv)


@pytest.mark.parametrize(
    "args, message",
    [
        (("workspace", "create"), "Missing argument"),
        (("nosuch",), "No such command"),
        (("workspace", "create", "x", "--bogus"), "No such option"),
    ],
)
def test_usage_errors_are_readable(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    env = {**os.environ, "LEGATO_DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}"}
    result = legato(*args, env=env)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_help_exits_zero(tmp_path: Path) -> None:
    result = legato("--help", env=dict(os.environ))
    assert result.returncode == 0 and "workspace" in result.stdout


def test_cli_start_up_loads_neither_the_application_nor_its_frameworks() -> None:
    # `legato --help` and usage errors must stay fast: the application (FastAPI, SQLAlchemy,
    # the runtime) is imported by the commands that need it, when they run.
    probe = (
        "import sys, legato.cli; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'fastapi', 'sqlalchemy', 'uvicorn', 'pydantic', 'aiohttp', 'phonenumbers'} "
        "or m in {'legato.app', 'legato.api', 'legato.runtime'})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert loaded.stdout.split() == []


def test_segment_members_limit_matches_the_service() -> None:
    import typer.main

    from legato.cli.segments import app as segments_app
    from legato.runtime.segment_service import MAX_PAGE

    members = typer.main.get_command(segments_app).commands["members"]  # type: ignore[attr-defined]
    limit = next(p for p in members.params if p.name == "limit")
    assert limit.max == MAX_PAGE


def test_profiles_get_and_list_from_the_cli(tmp_path: Path) -> None:
    srv = start_server(f"sqlite:///{tmp_path / 'l.db'}", tmp_path)
    try:
        token = base64.b64encode(f"{srv.write_key}:".encode()).decode()
        batch = [
            {"type": "track", "anonymousId": "a1", "event": "Viewed", "messageId": "m1"},
            {"type": "identify", "anonymousId": "a1", "userId": "u1", "messageId": "m2",
             "traits": {"email": "Ann@X.io", "plan": "pro"}},
            {"type": "identify", "userId": "u2", "messageId": "m3", "traits": {"plan": "free"}},
        ]  # fmt: skip
        sent = httpx.post(
            srv.url + "/v1/batch",
            json={"batch": batch},
            headers={"Authorization": f"Basic {token}"},
            timeout=30,
        )
        assert sent.status_code == 200 and sent.json()["rejected"] == []
        deadline = time.monotonic() + 60
        shown: dict[str, object] = {}
        while time.monotonic() < deadline:
            result = srv.cli("profiles", "get", "--user-id", "u1", "--json", check=False)
            if result.returncode == 0:
                shown = json.loads(result.stdout)
                if shown["event_count"] == 2:
                    break
            time.sleep(0.2)
        assert shown.get("event_count") == 2, shown
        assert {(i["kind"], i["value"]) for i in shown["identities"]} == {  # type: ignore[attr-defined]
            ("user_id", "u1"),
            ("anonymous_id", "a1"),
            ("email", "ann@x.io"),
        }
        assert shown["traits"] == {"email": "Ann@X.io", "plan": "pro"}
        for flag, value in [("--anonymous-id", "a1"), ("--email", "ANN@x.io")]:
            again = json.loads(srv.cli("profiles", "get", flag, value, "--json").stdout)
            assert again["id"] == shown["id"], flag
        listed = json.loads(srv.cli("profiles", "list", "--trait", "plan=pro", "--json").stdout)
        assert [p["id"] for p in listed["profiles"]] == [shown["id"]]

        for args, words in [
            (("--email", "not-an-email"), "not a valid email"),
            (("--user-id", "u1", "--email", "a@x.io"), "exactly one"),
            (("--user-id", "nobody"), "no profile with user_id"),
        ]:
            refused = srv.cli("profiles", "get", *args, check=False)
            assert refused.returncode in (1, 2) and words in refused.stderr, (args, refused.stderr)
            assert "Traceback" not in refused.stderr
    finally:
        stop_server(srv)
