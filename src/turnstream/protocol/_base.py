"""The base model of every wire type."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["WireModel"]


class WireModel(BaseModel):
    """A wire object: unknown fields are kept, so objects round-trip unchanged.

    Reading is tolerant (a newer server or client may add fields); only the top level
    of a request body is strict (`ResponseCreateParams` forbids unknown keys).
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)
