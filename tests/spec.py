"""Validate wire JSON against the Open Responses spec (`shared/spec/openresponses-openapi.json`).

The spec is OpenAPI 3.1, whose schema dialect is JSON Schema 2020-12. The whole
document is registered as one resource, so its `#/components/schemas/...` references
resolve wherever they appear. `discriminator` is an OpenAPI keyword that JSON Schema
ignores; every union in the spec is also told apart by its `type` enum, so `oneOf`
still picks exactly one member.

The one documented exception is the `error` event: we send OpenAI's flat shape
(`type`, `code`, `message`, `param`, `sequence_number`), not the spec's nested
`error` object, because the SDK raises on a top-level `error` key (protocol.md §2.5).

One correction is applied to the spec as loaded: `JsonSchemaResponseFormat.schema`
is typed as null only, which makes every echo of a `text.format` JSON schema (as
OpenAI sends it, and as the SDK types it: an object) invalid; it is read as an
object or null.

Usage from any test:

    from tests.spec import validate_event, validate_response
    validate_event(event.model_dump(mode="json"))
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = [
    "EVENT_SCHEMAS",
    "FLAT_ERROR_EVENT_SCHEMA",
    "SPEC_PATH",
    "validate_event",
    "validate_response",
    "validate_schema",
]


def _find_spec() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / "spec" / "openresponses-openapi.json"
        if candidate.exists():
            return candidate
    return Path("/work/shared/spec/openresponses-openapi.json")


SPEC_PATH = _find_spec()
_SPEC_URI = "urn:openresponses:spec"

EVENT_SCHEMAS: dict[str, str] = {
    "response.created": "ResponseCreatedStreamingEvent",
    "response.queued": "ResponseQueuedStreamingEvent",
    "response.in_progress": "ResponseInProgressStreamingEvent",
    "response.completed": "ResponseCompletedStreamingEvent",
    "response.incomplete": "ResponseIncompleteStreamingEvent",
    "response.failed": "ResponseFailedStreamingEvent",
    "response.output_item.added": "ResponseOutputItemAddedStreamingEvent",
    "response.output_item.done": "ResponseOutputItemDoneStreamingEvent",
    "response.content_part.added": "ResponseContentPartAddedStreamingEvent",
    "response.content_part.done": "ResponseContentPartDoneStreamingEvent",
    "response.output_text.delta": "ResponseOutputTextDeltaStreamingEvent",
    "response.output_text.done": "ResponseOutputTextDoneStreamingEvent",
    "response.output_text.annotation.added": "ResponseOutputTextAnnotationAddedStreamingEvent",
    "response.refusal.delta": "ResponseRefusalDeltaStreamingEvent",
    "response.refusal.done": "ResponseRefusalDoneStreamingEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaStreamingEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneStreamingEvent",
    "response.reasoning_summary_part.added": "ResponseReasoningSummaryPartAddedStreamingEvent",
    "response.reasoning_summary_part.done": "ResponseReasoningSummaryPartDoneStreamingEvent",
    "response.reasoning_summary_text.delta": "ResponseReasoningSummaryDeltaStreamingEvent",
    "response.reasoning_summary_text.done": "ResponseReasoningSummaryDoneStreamingEvent",
    "response.reasoning.delta": "ResponseReasoningDeltaStreamingEvent",
    "response.reasoning.done": "ResponseReasoningDoneStreamingEvent",
}
"""Event `type` -> the spec's component schema for it."""

FLAT_ERROR_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"const": "error"},
        "code": {"type": ["string", "null"]},
        "message": {"type": "string"},
        "param": {"type": ["string", "null"]},
        "sequence_number": {"type": "integer", "minimum": 0},
    },
    "required": ["type", "code", "message", "param", "sequence_number"],
    # A top-level "error" key would make the SDK raise mid-stream.
    "not": {"required": ["error"]},
    "additionalProperties": False,
}
"""Our flat `error` event (OpenAI's shape), in place of the spec's nested one."""


@functools.cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    json_schema_format = spec["components"]["schemas"]["JsonSchemaResponseFormat"]
    json_schema_format["properties"]["schema"] = {"anyOf": [{"type": "object"}, {"type": "null"}]}
    return spec


@functools.cache
def _registry() -> Registry[Any]:
    resource = Resource.from_contents(_spec(), default_specification=DRAFT202012)
    return Registry().with_resource(_SPEC_URI, resource)


@functools.cache
def _validator(schema_name: str) -> Draft202012Validator:
    if schema_name not in _spec()["components"]["schemas"]:
        raise KeyError(f"the spec has no component schema {schema_name!r}")
    schema = {"$ref": f"{_SPEC_URI}#/components/schemas/{schema_name}"}
    return Draft202012Validator(schema, registry=_registry())


def validate_schema(instance: Any, schema_name: str) -> None:
    """Validate `instance` against `components.schemas[schema_name]`.

    Raises:
        jsonschema.ValidationError: The best-matching error, with its path.
    """
    _validator(schema_name).validate(instance)


def validate_response(response: Mapping[str, Any]) -> None:
    """Validate a serialized Response against `ResponseResource`."""
    validate_schema(response, "ResponseResource")


def validate_event(event: Mapping[str, Any]) -> None:
    """Validate a serialized event against the schema its `type` names.

    The flat `error` event is checked against `FLAT_ERROR_EVENT_SCHEMA`.

    Raises:
        KeyError: The spec has no schema for this event type.
        jsonschema.ValidationError: The event does not match.
    """
    kind = event.get("type")
    if kind == "error":
        Draft202012Validator(FLAT_ERROR_EVENT_SCHEMA).validate(event)
        return
    if not isinstance(kind, str) or kind not in EVENT_SCHEMAS:
        raise KeyError(f"no spec schema for event type {kind!r}")
    validate_schema(event, EVENT_SCHEMAS[kind])
