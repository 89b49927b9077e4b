"""tests/spec.py really rejects what the spec forbids (so passing it means something)."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from tests import spec
from tests.spec import validate_event, validate_response
from turnstream.protocol import Response


def test_a_response_missing_a_required_field_is_rejected() -> None:
    data = Response(id="resp_1", created_at=1, model="m").model_dump(mode="json")
    del data["presence_penalty"]
    with pytest.raises(jsonschema.ValidationError):
        validate_response(data)


def test_an_output_item_with_a_wrong_status_is_rejected() -> None:
    data = Response(id="resp_1", created_at=1, model="m").model_dump(mode="json")
    data["output"] = [
        {
            "type": "function_call",
            "id": "fc",
            "call_id": "c",
            "name": "f",
            "arguments": "",
            "status": "x",
        }
    ]
    with pytest.raises(jsonschema.ValidationError):
        validate_response(data)


def test_a_nested_error_event_is_rejected_as_not_our_flat_shape() -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate_event(
            {
                "type": "error",
                "sequence_number": 0,
                "code": None,
                "message": "m",
                "param": None,
                "error": {"message": "m"},
            }
        )


def test_an_event_type_without_a_schema_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        validate_event({"type": "response.reasoning_text.delta"})


def test_a_delta_event_missing_its_item_id_is_rejected() -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate_event(
            {
                "type": "response.output_text.delta",
                "sequence_number": 0,
                "output_index": 0,
                "content_index": 0,
                "delta": "x",
            }
        )


def test_a_missing_spec_fails_with_a_message_saying_where_to_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spec, "SPEC_PATH", tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError, match=f"shared/ folder.*{spec.SPEC_ENV}"):
        spec._spec.__wrapped__()


def test_a_shape_validated_once_still_rejects_a_value_the_spec_forbids() -> None:
    data = Response(id="resp_1", created_at=1, model="m").model_dump(mode="json")
    validate_response(data)
    validate_response({**data, "id": "resp_2", "created_at": 99})  # same shape: cached
    with pytest.raises(jsonschema.ValidationError):
        validate_response({**data, "object": "responses"})  # not in the enum
    with pytest.raises(jsonschema.ValidationError):
        validate_response({**data, "created_at": "1"})  # a string where an integer goes
