"""The real request schemas in `/openapi.json`.

The create routes read their bodies themselves (to answer OpenAI's error shapes
rather than FastAPI's), so FastAPI cannot see what they accept. `request_body(model)`
describes a route's body for `openapi_extra`, and `publish_request_schemas(app)`
moves the models' shared definitions into `components/schemas`, where those
references point. Clients, and fuzzers, then see exactly what the server validates.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

__all__ = ["publish_request_schemas", "request_body"]

_REF = "#/components/schemas/{model}"
_DEFS_KEY = "x-turnstream-defs"
"""Where a route's `openapi_extra` carries its body's definitions until
`publish_request_schemas` moves them into `components/schemas`."""


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template=_REF)


def request_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """`openapi_extra` for a route whose JSON body is `model`."""
    schema = _schema(model)
    defs = schema.pop("$defs", {})
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": schema}},
        },
        _DEFS_KEY: defs,
    }


def publish_request_schemas(app: FastAPI) -> None:
    """Make `app.openapi()` carry every `request_body` model's definitions."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        components = document.setdefault("components", {}).setdefault("schemas", {})
        for path in document.get("paths", {}).values():
            for operation in path.values():
                if isinstance(operation, dict):
                    components.update(operation.pop(_DEFS_KEY, {}))
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
