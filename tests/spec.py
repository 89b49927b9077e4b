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
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = [
    "EVENT_SCHEMAS",
    "FLAT_ERROR_EVENT_SCHEMA",
    "SPEC_ENV",
    "SPEC_PATH",
    "validate_event",
    "validate_response",
    "validate_schema",
]


SPEC_ENV = "TURNSTREAM_SPEC"
"""Set to the spec file's path to use a copy that is not beside the checkout."""
_SPEC_IN_SHARED = Path("shared") / "spec" / "openresponses-openapi.json"
_CHECKOUT = Path(__file__).resolve().parents[1]


def _find_spec() -> Path:
    """`$TURNSTREAM_SPEC`, else `shared/spec/` beside the checkout or beside a folder above it.

    CI clones the repository into a fresh folder with `shared/` beside it; a git
    worktree sits deeper (`<root>/wt/<name>`) with `shared/` beside the folders above.
    """
    if os.environ.get(SPEC_ENV):
        return Path(os.environ[SPEC_ENV])
    for folder in _CHECKOUT.parents:
        if (folder / _SPEC_IN_SHARED).is_file():
            return folder / _SPEC_IN_SHARED
    return _CHECKOUT.parent / _SPEC_IN_SHARED


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
    if not SPEC_PATH.is_file():
        raise FileNotFoundError(
            f"the Open Responses spec is not at {SPEC_PATH}: put the project's shared/ folder "
            f"beside the checkout, or set {SPEC_ENV} to the path of openresponses-openapi.json"
        )
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


@functools.cache
def _enum_strings() -> frozenset[str]:
    """Every string the spec names in an `enum` (the spec has no other enum values)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            found.update(value for value in node.get("enum", ()) if isinstance(value, str))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(_spec()["components"]["schemas"])
    return frozenset(found)


_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
_STRING_LENGTHS = (0, 64, 512, 10485760)
"""The spec's `minLength`/`maxLength` bounds: strings in one bucket pass or fail alike."""


def _shape(value: Any) -> Any:
    """What the spec's keywords can tell apart in `value`, and nothing else.

    The spec constrains strings only by `enum`, the lengths in `_STRING_LENGTHS` and
    the one name pattern; integers by bounds no larger than 20; arrays by their items
    and a length of at most 128; it has no `uniqueItems`, `prefixItems` or `format`.
    So two instances with one shape are both valid or both invalid, and the suite's
    thousands of events validate once per shape instead of once each.
    """
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        shapes: list[Any] = []
        for item in value:
            if (shape := _shape(item)) not in shapes:
                shapes.append(shape)
        return ["len", min(len(value), 129), *shapes]
    if isinstance(value, str):
        if value in _enum_strings():
            return value
        bucket = sum(len(value) > limit for limit in _STRING_LENGTHS)
        return f"\0str:{bucket}:{bool(_NAME.match(value))}"
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return max(-1, min(value, 21))
    return repr(value)


_VALID_SHAPES: set[tuple[str, str]] = set()


def validate_schema(instance: Any, schema_name: str) -> None:
    """Validate `instance` against `components.schemas[schema_name]`.

    An instance of a shape already found valid passes at once (see `_shape`).

    Raises:
        jsonschema.ValidationError: The best-matching error, with its path.
    """
    key = (schema_name, json.dumps(_shape(instance), sort_keys=True))
    if key in _VALID_SHAPES:
        return
    _validator(schema_name).validate(instance)
    _VALID_SHAPES.add(key)


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
