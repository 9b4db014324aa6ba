"""The condition language's JSON Schema: the shape users write, as the console's builder
generates its forms from it. Never evaluates anything."""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from legato.domain.conditions.tree import CONDITION_ADAPTER


class _UserShape(GenerateJsonSchema):
    """JSON Schema of what users write: an operator left out is absent, never null."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        if json_schema.get("default", 0) is None:
            del json_schema["default"]
        return json_schema


def condition_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of the shape users write; the console's builder reads it."""
    return copy.deepcopy(_schema())


@functools.cache
def _schema() -> dict[str, Any]:
    schema = CONDITION_ADAPTER.json_schema(by_alias=True, schema_generator=_UserShape)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Condition",
        "description": (
            "One node: all / any / not, or a leaf (event, trait, computed_trait, segment, "
            "random_bucket). A comparison carries exactly one operator."
        ),
        **schema,
    }
