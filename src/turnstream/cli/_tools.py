"""`--tools module:attr`: load the user's own `@tool` functions."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable

from turnstream.runtime import Tool

__all__ = ["ToolLoadError", "load_tools", "merge_tools"]


class ToolLoadError(ValueError):
    """The `--tools` reference does not name a Tool or a list of Tools."""


def load_tools(reference: str) -> list[Tool]:
    """Import `module:attr` (the current directory is importable) and return its tools.

    `attr` may be a `Tool`, or a list or tuple of them.
    """
    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise ToolLoadError(f"--tools {reference!r}: expected module:attribute, e.g. mytools:TOOLS")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ToolLoadError(f"--tools {reference!r}: cannot import {module_name}: {exc}") from exc
    try:
        value = getattr(module, attr)
    except AttributeError:
        raise ToolLoadError(f"--tools {reference!r}: {module_name} has no {attr!r}") from None
    if isinstance(value, Tool):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(t, Tool) for t in value):
        return list(value)
    kind = type(value).__name__
    raise ToolLoadError(
        f"--tools {reference!r} is a {kind}, not a Tool or a list of Tools (decorate functions with @turnstream.runtime.tool)"
    )


def merge_tools(groups: Iterable[Iterable[Tool]]) -> list[Tool]:
    """All tools, later definitions replacing earlier ones of the same name."""
    by_name: dict[str, Tool] = {}
    for group in groups:
        for item in group:
            by_name[item.name] = item
    return list(by_name.values())
