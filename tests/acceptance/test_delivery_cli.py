"""The delivery commands as users type them: the suppression list, messages and their
replay, consent evidence — each command a real `legato` subprocess on one SQLite file."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def legato(tmp_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEGATO_DATABASE_URL": f"sqlite:///{tmp_path / 'legato.db'}"}
    return subprocess.run(
        [sys.executable, "-m", "legato", *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
        cwd=tmp_path,
    )


def test_suppressions_messages_and_consent_from_the_command_line(tmp_path: Path) -> None:
    legato(tmp_path, "workspace", "create", "shop")
    (tmp_path / "docs.yaml").write_text(
        """
kind: Channel
key: email
provider: smtp
settings: {host: 127.0.0.1, port: 9, security: none, from: shop@example.com}
---
kind: Template
key: receipt
channel: email
category: transactional
subject: Receipt
text: Thanks
"""
    )
    legato(tmp_path, "apply", "-f", str(tmp_path / "docs.yaml"))
    assert (
        "suppressed"
        in legato(
            tmp_path, "suppressions", "add", "email", "Ann@Example.com", "--note", "by phone"
        ).stdout
    )
    listed = json.loads(legato(tmp_path, "suppressions", "list", "--json").stdout)
    assert [(s["address"], s["reason"], s["note"]) for s in listed["suppressions"]] == [
        ("Ann@example.com", "manual", "by phone")
    ]
    refused = legato(tmp_path, "suppressions", "add", "email", "not an address", check=False)
    assert refused.returncode == 2 and "address" in refused.stderr

    sent = json.loads(
        legato(
            tmp_path, "messages", "send", "-t", "receipt", "--to", "email=bob@example.com"
        ).stdout
    )
    assert sent["status"] == "queued" and sent["created"] is True
    listed = json.loads(legato(tmp_path, "messages", "list", "--json").stdout)["messages"]
    assert [(m["id"], m["status"], m["template"]) for m in listed] == [
        (sent["id"], "queued", "receipt")
    ]
    nothing = legato(tmp_path, "messages", "replay", sent["id"], "--json")
    assert json.loads(nothing.stdout) == {"replayed": []}  # queued: nothing to replay
    assert legato(tmp_path, "messages", "replay", check=False).returncode == 2

    exported = legato(tmp_path, "consent", "export").stdout
    assert next(csv.reader(io.StringIO(exported))) == [
        "id",
        "profile_id",
        "channel",
        "topic",
        "status",
        "source",
        "at_ms",
        "evidence",
    ]
    legato(tmp_path, "suppressions", "remove", "email", "ann@example.com")
    assert json.loads(legato(tmp_path, "suppressions", "list", "--json").stdout) == {
        "suppressions": []
    }
