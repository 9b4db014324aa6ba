"""A small demo dataset, generated once for the dataset tests (they only read it)."""

from __future__ import annotations

import pytest

from legato.demo.dataset import DemoSpec, Message, generate

#: 2026-01-05T08:00:00Z, a Monday.
NOW_MS = 1_767_600_000_000
SMALL = DemoSpec(now_ms=NOW_MS, customers=600, days=90, seed=7)


@pytest.fixture(scope="session")
def small_dataset() -> list[Message]:
    """Every message of `SMALL`, in order."""
    return [message for batch in generate(SMALL) for message in batch]


@pytest.fixture(scope="session")
def small_spec() -> DemoSpec:
    """The spec `small_dataset` was generated from."""
    return SMALL
