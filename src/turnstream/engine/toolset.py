"""A request's tools as the model sees them, and the model's calls mapped back.

Models behind turnstream (Chat Completions upstreams, the embedded model, the echo
model) only know flat functions. `expand_tools` turns the request's tools into that
form, and `Toolset` remembers the way back:

- a `function` stays itself;
- a `namespace`'s members become functions named `<namespace>__<name>`; a call to
  one comes back as a `function_call` with `namespace` and the member's own `name`;
- a `custom` (freeform) tool becomes a function with one string argument, `input`,
  whose description carries the tool's grammar; a call comes back as a
  `custom_tool_call` whose `input` is that string;
- a hosted tool (`web_search`, `file_search`, ...) cannot run here: it is left out,
  and its type is listed in `Toolset.dropped` so the server can say so.

`model_items` rewrites a context the same way (namespaced calls get their flat name,
custom calls and their outputs become function calls and outputs), so every
provider, and the one Chat translator, only ever sees functions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ToolTarget", "Toolset", "expand_tools"]

_MAX_NAME = 64
_SEPARATOR = "__"
_CUSTOM_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's whole input."}},
    "required": ["input"],
    "additionalProperties": False,
}


@dataclass(frozen=True, slots=True)
class ToolTarget:
    """What a model-facing function name stands for."""

    kind: Literal["function", "custom"]
    name: str
    namespace: str | None = None


@dataclass(slots=True)
class Toolset:
    """The tools offered to the model, and how its calls map back to the request's."""

    functions: list[dict[str, Any]] = field(default_factory=list)
    """Flat Responses function tools, as the model is offered them."""
    dropped: list[str] = field(default_factory=list)
    """The types of hosted tools left out, in request order, without repeats."""
    _targets: dict[str, ToolTarget] = field(default_factory=dict)
    _names: dict[tuple[str | None, str], str] = field(default_factory=dict)

    def target(self, model_name: str) -> ToolTarget:
        """What a call to `model_name` is (a plain function when unknown)."""
        return self._targets.get(model_name) or ToolTarget("function", model_name)

    def model_name(self, name: str, namespace: str | None = None) -> str:
        """The function name the model knows a (namespaced) tool by."""
        return self._names.get((namespace, name)) or _flat_name(name, namespace)

    def call_item(self, model_name: str, arguments: str) -> dict[str, Any]:
        """The fields of the output item for a model's call (without ids and status).

        A `function_call` (`name`, `arguments`, and `namespace` for a namespaced
        function), or a `custom_tool_call` (`name`, `input`).
        """
        target = self.target(model_name)
        fields: dict[str, Any] = {"name": target.name}
        if target.namespace is not None:
            fields["namespace"] = target.namespace
        if target.kind == "custom":
            return {"type": "custom_tool_call", **fields, "input": _custom_input(arguments)}
        return {"type": "function_call", **fields, "arguments": arguments}

    def model_items(self, items: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The context as the model sees it: every call and output a function's."""
        view: list[Mapping[str, Any]] = []
        for item in items:
            kind = item.get("type")
            if kind == "function_call" and item.get("namespace"):
                flat = {k: v for k, v in item.items() if k != "namespace"}
                flat["name"] = self.model_name(str(item.get("name")), str(item["namespace"]))
                view.append(flat)
            elif kind == "custom_tool_call":
                namespace = item.get("namespace")
                view.append(
                    {
                        "type": "function_call",
                        "call_id": item.get("call_id"),
                        "name": self.model_name(str(item.get("name")), namespace),
                        "arguments": json.dumps({"input": item.get("input", "")}),
                    }
                )
            elif kind == "custom_tool_call_output":
                view.append(
                    {
                        "type": "function_call_output",
                        "call_id": item.get("call_id"),
                        "output": item.get("output", ""),
                    }
                )
            else:
                view.append(item)
        return view

    def model_choice(self, choice: str | Mapping[str, Any]) -> str | dict[str, Any]:
        """`tool_choice` in terms of the model's functions."""
        if isinstance(choice, str):
            return choice
        kind = choice.get("type")
        if kind in ("function", "custom"):
            return {"type": "function", "name": self.model_name(str(choice.get("name")))}
        if kind == "allowed_tools":
            allowed: list[dict[str, Any]] = []
            for tool in choice.get("tools") or ():
                if not isinstance(tool, Mapping):
                    continue
                if tool.get("type") == "namespace":
                    prefix = self.model_name("", str(tool.get("name")))
                    allowed += [
                        {"type": "function", "name": f["name"]}
                        for f in self.functions
                        if str(f["name"]).startswith(prefix)
                    ]
                elif tool.get("type") in ("function", "custom") and tool.get("name"):
                    name = self.model_name(str(tool["name"]))
                    allowed.append({"type": "function", "name": name})
            return {"type": "allowed_tools", "mode": choice.get("mode", "auto"), "tools": allowed}
        return dict(choice)

    def _add(self, tool: Mapping[str, Any], namespace: str | None, prefix: str = "") -> None:
        kind = tool.get("type", "function")
        name = str(tool.get("name"))
        model_name = _flat_name(name, namespace)
        self._names[(namespace, name)] = model_name
        description = str(tool.get("description") or "")
        if prefix and description:
            description = f"{prefix} {description}"
        elif prefix:
            description = prefix
        if kind == "custom":
            self._targets[model_name] = ToolTarget("custom", name, namespace)
            function: dict[str, Any] = {
                "type": "function",
                "name": model_name,
                "description": _custom_description(description, tool.get("format")),
                "parameters": _CUSTOM_PARAMETERS,
                "strict": False,
            }
        else:
            self._targets[model_name] = ToolTarget("function", name, namespace)
            function = {
                "type": "function",
                "name": model_name,
                "description": description or None,
                "parameters": tool.get("parameters"),
                "strict": tool.get("strict"),
            }
        self.functions.append(function)


def expand_tools(tools: Sequence[Mapping[str, Any]]) -> Toolset:
    """The request's tools (wire dicts) as a `Toolset`."""
    toolset = Toolset()
    for tool in tools:
        kind = tool.get("type", "function")
        if kind in ("function", "custom"):
            toolset._add(tool, None)
        elif kind == "namespace":
            namespace = str(tool.get("name"))
            prefix = str(tool.get("description") or "").strip()
            for member in tool.get("tools") or ():
                toolset._add(member, namespace, f"({prefix})" if prefix else "")
        elif str(kind) not in toolset.dropped:
            toolset.dropped.append(str(kind))
    return toolset


def _flat_name(name: str, namespace: str | None) -> str:
    if not namespace:
        return name
    flat = namespace.rstrip("_") + _SEPARATOR + name
    if len(flat) <= _MAX_NAME:
        return flat
    # Chat Completions caps function names at 64 characters; keep them unique.
    digest = hashlib.sha256(flat.encode()).hexdigest()[:8]
    return flat[: _MAX_NAME - 9] + "_" + digest


def _custom_description(description: str, format: object) -> str:
    parts = [description] if description else []
    parts.append("Put the tool's whole input, as plain text, in the string argument `input`.")
    if isinstance(format, Mapping) and format.get("type") == "grammar":
        parts.append(
            f"The input must follow this {format.get('syntax', '')} grammar:\n"
            f"{format.get('definition', '')}"
        )
    return "\n\n".join(parts)


def _custom_input(arguments: str) -> str:
    """The string a model passed to a custom tool, however it wrote it."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return arguments  # it wrote the input itself rather than {"input": ...}
    if isinstance(parsed, Mapping) and isinstance(parsed.get("input"), str):
        return str(parsed["input"])
    return parsed if isinstance(parsed, str) else arguments
