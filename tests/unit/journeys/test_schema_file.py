"""The published JSON Schema file is the one the journey models generate (regenerate it with
`scripts/export-journey-schema`), and it accepts every example of the library."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jsonschema
import orjson
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = ROOT / "src" / "legato" / "schemas" / "journey.schema.json"


def _exporter() -> object:
    spec = importlib.util.spec_from_loader(
        "export_journey_schema",
        importlib.machinery.SourceFileLoader(
            "export_journey_schema", str(ROOT / "scripts" / "export-journey-schema")
        ),
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_schema_file_is_current() -> None:
    exporter = _exporter()
    assert SCHEMA.read_bytes() == exporter.render(), (  # type: ignore[attr-defined]
        "run scripts/export-journey-schema"
    )


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "journeys").glob("*.yaml")))
def test_every_example_is_valid_against_the_schema_file(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), orjson.loads(SCHEMA.read_bytes()))
