"""Tools this server cannot run: OpenAI's hosted ones (`web_search`, `file_search`, ...).

Clients such as Codex CLI offer them on every request and break if they are refused,
so by default they are left out of what the model sees, a log line says so, and
the response carries `x-turnstream-dropped-tools` naming them. With
`Settings.hosted_tools = "reject"` they are a 400 instead, for users who prefer to
fail loudly.
"""

from __future__ import annotations

import logging

from turnstream.engine.toolset import Toolset, expand_tools
from turnstream.protocol import ResponseCreateParams
from turnstream.protocol.errors import APIError, invalid_request

from .settings import Settings

__all__ = ["DROPPED_TOOLS_HEADER", "dropped_tools_headers", "offer_tools"]

log = logging.getLogger("turnstream.server")

DROPPED_TOOLS_HEADER = "x-turnstream-dropped-tools"
"""Names the hosted tool types a response was generated without, comma-separated."""


def offer_tools(params: ResponseCreateParams, settings: Settings) -> Toolset:
    """The request's tools as the model will be offered them.

    Raises:
        APIError: 400 `unsupported_tool` when the request offers a hosted tool and
            `settings.hosted_tools` is `"reject"`.
    """
    tools = [tool.model_dump(mode="json", exclude_none=True) for tool in params.tools or ()]
    toolset = expand_tools(tools)
    if toolset.dropped:
        if settings.hosted_tools == "reject":
            raise _hosted_tools_refused(toolset.dropped)
        log.info(
            "left out hosted tools this server cannot run: %s (model %s)",
            ", ".join(toolset.dropped),
            params.model,
        )
    return toolset


def dropped_tools_headers(toolset: Toolset) -> dict[str, str]:
    """The response header naming the hosted tools left out, if any were."""
    return {DROPPED_TOOLS_HEADER: ",".join(toolset.dropped)} if toolset.dropped else {}


def _hosted_tools_refused(kinds: list[str]) -> APIError:
    names = ", ".join(f"'{kind}'" for kind in kinds)
    return invalid_request(
        f"This server cannot run hosted tools: {names}. Only 'function', 'custom' and "
        "'namespace' tools are supported.",
        param="tools",
        code="unsupported_tool",
    )
