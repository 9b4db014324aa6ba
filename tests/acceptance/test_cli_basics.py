"""The CLI as a user runs it: readable errors, exit codes, one engine process on SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
