"""The JSON Schema of an environment spec, generated from the pydantic models (for editors: YAML
language servers complete and check a spec against it). The models stay the one definition."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _SpecSchema(GenerateJsonSchema):
    """pydantic's generator, plus the spec's own value types: a secret is written as a string."""

    def is_instance_schema(self, schema: core_schema.IsInstanceSchema) -> JsonSchemaValue:
        from drbootstrap.spec.secrets import SecretRef

        if schema["cls"] is SecretRef:
            return {"type": "string",
                    "description": "A secret: ${env:NAME} or ${file:PATH} (read when the spec is loaded)."}
        return super().is_instance_schema(schema)


def spec_json_schema() -> dict[str, Any]:
    """The schema of the YAML an operator writes (validation mode: what is accepted)."""
    from drbootstrap.spec.models import EnvironmentSpec

    schema = EnvironmentSpec.model_json_schema(mode="validation", schema_generator=_SpecSchema)
    return {"$schema": SCHEMA_DIALECT, "title": "drbootstrap environment spec", **schema}
