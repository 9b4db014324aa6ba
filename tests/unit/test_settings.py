"""Settings: the pipeline's chunk size is read, checked, and reaches the pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from legato.app import Legato
from legato.cli.demo import BULK_CHUNK_SIZE, loading_settings
from legato.errors import InvalidInput
from legato.settings import Settings


def test_the_pipeline_chunk_size_defaults_to_500_and_is_read_from_the_environment() -> None:
    assert Settings().pipeline_chunk_size == 500
    assert Settings.from_env({}).pipeline_chunk_size == 500
    assert Settings.from_env({"LEGATO_PIPELINE_CHUNK_SIZE": "2000"}).pipeline_chunk_size == 2000


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("0", "not 0"),
        ("-5", "not -5"),
        ("10001", "not 10001"),
        ("big", "invalid literal"),
        ("1.5", "invalid literal"),
    ],
)
def test_a_bad_pipeline_chunk_size_is_refused_naming_the_variable(raw: str, shown: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        Settings.from_env({"LEGATO_PIPELINE_CHUNK_SIZE": raw})
    assert refused.value.message.startswith("LEGATO_PIPELINE_CHUNK_SIZE: ")
    assert shown in refused.value.message
    assert refused.value.details == {"field": "pipeline_chunk_size"}


def test_a_bad_pipeline_chunk_size_is_refused_when_given_directly() -> None:
    with pytest.raises(InvalidInput, match="from 1 to 10000, not 0"):
        Settings(pipeline_chunk_size=0)
    with pytest.raises(InvalidInput, match="not True"):
        Settings(pipeline_chunk_size=True)
    with pytest.raises(InvalidInput, match="not 0"):
        Settings().with_(pipeline_chunk_size=0)


async def test_the_chunk_size_reaches_the_pipeline(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", pipeline_chunk_size=1234)
    legato = Legato(settings)
    try:
        assert legato.pipeline.chunk_size == 1234
    finally:
        await legato.db.dispose()


def test_the_demo_loads_in_bulk_chunks_and_keeps_a_larger_setting() -> None:
    assert Settings().pipeline_chunk_size < BULK_CHUNK_SIZE
    assert loading_settings(Settings()).pipeline_chunk_size == BULK_CHUNK_SIZE
    assert loading_settings(Settings(pipeline_chunk_size=5000)).pipeline_chunk_size == 5000
