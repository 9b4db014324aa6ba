"""`legato demo` refuses a bad pipeline chunk size before it loads anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_refuses_a_bad_pipeline_chunk_size_with_a_readable_error(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LEGATO_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "LEGATO_PIPELINE_CHUNK_SIZE": "0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "legato", "demo", "--customers", "10", "--no-serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "LEGATO_PIPELINE_CHUNK_SIZE" in result.stderr and "not 0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "demo.db").exists()
