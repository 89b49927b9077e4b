"""Python functions as Responses function tools: schema, validation, invocation.

`@tool` reads a function's type hints and Google-style docstring, builds a pydantic
model of its parameters, and from that the JSON schema sent to the model. The schema is
strict (`strict: true`) whenever the strict-mode rules allow it: every object closed
with `additionalProperties: false`, every property required, and parameters that have
a default written as nullable (the model sends `null` to mean "use the default").
Otherwise the tool falls back to `strict: false`.

Invocation validates the model's JSON against the same pydantic model. A sync function
runs in a worker thread so it never blocks the event loop; an async one runs on the
loop. A parameter annotated `ToolContext` is excluded from the schema and receives the
call's context, through which the tool can report progress.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional, get_type_hints, overload

import pydantic
import pydantic_core

from .errors import ToolDefinitionError

__all__ = [
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolContext",
    "ToolTimeoutError",
    "UnknownToolError",
    "serialize_output",
    "tool",
]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One `function_call` item the model emitted."""

    call_id: str
    name: str
    arguments: str
    """The raw JSON text the model produced."""
    item_id: str = ""


class ToolArgumentsError(ValueError):
    """The model's arguments are not valid JSON or do not match the schema.

    Not an `AgentError`: it never escapes a run, it becomes the call's output so the
    model can correct itself.
    """

    def __init__(self, tool_name: str, details: str) -> None:
        super().__init__(f"invalid arguments for tool '{tool_name}':\n{details}")
        self.tool_name = tool_name
        self.details = details


class UnknownToolError(LookupError):
    """The model called a tool this agent does not have."""

    def __init__(self, name: str, available: list[str]) -> None:
        listing = ", ".join(available) or "none"
        super().__init__(f"unknown tool '{name}'; available tools: {listing}")
        self.name = name


class ToolTimeoutError(TimeoutError):
    """A tool ran longer than its `timeout`."""

    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(f"tool '{name}' timed out after {timeout:g} s")
        self.name = name
        self.timeout = timeout


class ToolContext:
    """Handed to a tool that declares a parameter annotated `ToolContext`.

    Attributes:
        call_id: The call being answered.
        name: The tool's name.
    """

    def __init__(
        self,
        call_id: str,
        name: str,
        report: Callable[[str], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.call_id = call_id
        self.name = name
        self._report = report
        self._loop = loop
        self._loop_thread = threading.get_ident()

    async def progress(self, message: str) -> None:
        """Report progress from an async tool; surfaces as a `ToolProgress` event."""
        self._report(message)

    def progress_nowait(self, message: str) -> None:
        """Report progress from any thread (a sync tool runs in a worker thread)."""
        if threading.get_ident() == self._loop_thread:
            self._report(message)
        else:
            self._loop.call_soon_threadsafe(self._report, message)


def serialize_output(value: object) -> str:
    """A tool's return value as `function_call_output.output`: str as-is, else JSON."""
    if isinstance(value, str):
        return value
    return pydantic_core.to_json(value, fallback=str).decode()


@dataclass(frozen=True, slots=True)
class Tool:
    """A function tool. Build with `@tool`; fields are read-only.

    Attributes:
        name: The name the model calls.
        description: What the tool does, from the docstring unless given.
        parameters: The JSON schema of the arguments.
        strict: Whether `parameters` is a strict-mode schema.
        timeout: Seconds before a call is abandoned with a timeout output.
        sequential: The tool is a barrier: it waits for earlier calls, runs alone,
            and later calls wait for it.
        independent: The tool may start as soon as its call is complete in the
            stream, before the response has ended.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    strict: bool
    fn: Callable[..., Any]
    timeout: float | None = None
    sequential: bool = False
    independent: bool = False
    _model: type[pydantic.BaseModel] = field(default=pydantic.BaseModel, repr=False)
    _context_param: str | None = field(default=None, repr=False)
    _defaults_for_null: frozenset[str] = field(default=frozenset(), repr=False)

    def definition(self) -> dict[str, Any]:
        """The `tools[]` entry sent in each request."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "strict": self.strict,
        }

    def validate(self, raw_arguments: str) -> dict[str, Any]:
        """Parse and validate the model's arguments into keyword arguments.

        Raises:
            ToolArgumentsError: with details the model can act on.
        """
        try:
            data = json.loads(raw_arguments) if raw_arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise ToolArgumentsError(
                self.name, f"the arguments are not valid JSON ({exc})"
            ) from None
        if not isinstance(data, dict):
            raise ToolArgumentsError(self.name, "the arguments must be a JSON object")
        for name in self._defaults_for_null:
            # Strict schemas make defaulted parameters nullable: null means "default".
            if name in data and data[name] is None:
                del data[name]
        try:
            model = self._model.model_validate(data)
        except pydantic.ValidationError as exc:
            raise ToolArgumentsError(self.name, _describe(exc)) from None
        return {name: getattr(model, name) for name in type(model).model_fields}

    async def invoke(self, raw_arguments: str, context: ToolContext) -> str:
        """Validate, run (in a thread if sync), apply the timeout, serialize.

        Raises:
            ToolArgumentsError: invalid arguments.
            ToolTimeoutError: the call outlived `timeout`.
            Exception: whatever the function raised.
        """
        kwargs = self.validate(raw_arguments)
        if self._context_param is not None:
            kwargs[self._context_param] = context
        try:
            async with asyncio.timeout(self.timeout):
                value = await self._call(kwargs)
        except TimeoutError as exc:
            if self.timeout is not None and not isinstance(exc, ToolTimeoutError):
                raise ToolTimeoutError(self.name, self.timeout) from None
            raise
        return serialize_output(value)

    async def _call(self, kwargs: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(self.fn):
            return await self.fn(**kwargs)
        # A sync tool in a worker thread: on timeout or cancel the thread cannot be
        # stopped, only abandoned; its result is then discarded.
        result = await asyncio.to_thread(self.fn, **kwargs)
        if inspect.isawaitable(result):
            return await result
        return result


def _describe(exc: pydantic.ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in error["loc"]) or "(arguments)"
        lines.append(f"- {loc}: {error['msg']} (got {error.get('input')!r})")
    return "\n".join(lines)


_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters)\s*:\s*$")
_SECTION_HEADER = re.compile(r"^\s*[A-Z][A-Za-z ]*:\s*$")
_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {param: description})."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    i = 0
    while i < len(lines) and not _SECTION_HEADER.match(lines[i]):
        summary.append(lines[i])
        i += 1
    while i < len(lines):
        if not _ARGS_HEADER.match(lines[i]):
            i += 1
            continue
        header_indent = len(lines[i]) - len(lines[i].lstrip())
        i += 1
        current: str | None = None
        arg_indent = 0
        while i < len(lines):
            line = lines[i]
            indent = len(line) - len(line.lstrip())
            if line.strip() and indent <= header_indent:
                break
            match = _ARG_LINE.match(line)
            if match and (current is None or indent <= arg_indent):
                current = match.group(1).lstrip("*")
                arg_indent = indent
                params[current] = match.group(3).strip()
            elif current is not None and line.strip():
                params[current] = f"{params[current]} {line.strip()}".strip()
            i += 1
    return "\n".join(summary).strip(), params


def _accepts_none(annotation: Any) -> bool:
    try:
        pydantic.TypeAdapter(annotation).validate_python(None)
    except pydantic.ValidationError:
        return False
    except Exception:  # pragma: no cover - exotic annotations
        return False
    return True


def _strict_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """Make a pydantic schema strict-mode shaped, or `None` if it cannot be."""
    ok = True

    def walk(node: Any) -> Any:
        nonlocal ok
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items() if k not in ("title", "default")}
        if out.get("type") == "object" or "properties" in out:
            props = out.get("properties", {})
            extra = out.get("additionalProperties", False)
            if extra is not False:
                ok = False
            out["additionalProperties"] = False
            if set(out.get("required", [])) != set(props):
                ok = False
            out["required"] = list(props)
        return out

    converted = walk(schema)
    if not isinstance(converted, dict) or not ok:
        return None
    return converted


def _loose_schema(schema: dict[str, Any]) -> dict[str, Any]:
    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        return {k: walk(v) for k, v in node.items() if k != "title"}

    result: dict[str, Any] = walk(schema)
    return result


def _build(
    fn: Callable[..., Any],
    *,
    name: str | None,
    description: str | None,
    timeout: float | None,
    sequential: bool,
    independent: bool,
    strict: bool | None,
) -> Tool:
    if timeout is not None and timeout <= 0:
        raise ToolDefinitionError("timeout must be positive")
    tool_name = name or fn.__name__
    doc_summary, doc_params = _parse_docstring(inspect.getdoc(fn))
    try:
        hints = get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise ToolDefinitionError(f"cannot resolve type hints of {tool_name}: {exc}") from exc
    loose_fields: dict[str, Any] = {}
    strict_fields: dict[str, Any] = {}
    context_param: str | None = None
    defaults_for_null: set[str] = set()
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(f"{tool_name}: *args/**kwargs cannot be tool parameters")
        annotation = hints.get(param.name, inspect.Parameter.empty)
        if annotation is ToolContext:
            context_param = param.name
            continue
        if annotation is inspect.Parameter.empty:
            raise ToolDefinitionError(f"{tool_name}: parameter '{param.name}' needs a type hint")
        desc = doc_params.get(param.name)
        if param.default is inspect.Parameter.empty:
            loose_fields[param.name] = (annotation, pydantic.Field(description=desc))
            strict_fields[param.name] = (annotation, pydantic.Field(description=desc))
        else:
            loose_fields[param.name] = (
                annotation,
                pydantic.Field(default=param.default, description=desc),
            )
            if not _accepts_none(annotation):
                defaults_for_null.add(param.name)
            # `annotation | None` needs an annotation that implements `|` (a string
            # forward reference does not); Optional[...] takes any annotation
            strict_fields[param.name] = (Optional[annotation], pydantic.Field(description=desc))  # noqa: UP045
    config = pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=False)
    model_name = f"{tool_name}_arguments"
    try:
        model = pydantic.create_model(model_name, __config__=config, **loose_fields)
        loose = model.model_json_schema()
        strict_model = pydantic.create_model(model_name, __config__=config, **strict_fields)
        strict_candidate = _strict_schema(strict_model.model_json_schema())
    except (pydantic.PydanticSchemaGenerationError, TypeError) as exc:
        raise ToolDefinitionError(f"{tool_name}: {exc}") from exc
    if strict is True and strict_candidate is None:
        raise ToolDefinitionError(f"{tool_name}: the parameters cannot be a strict-mode schema")
    use_strict = strict is not False and strict_candidate is not None
    parameters = strict_candidate if use_strict and strict_candidate else _loose_schema(loose)
    return Tool(
        name=tool_name,
        description=description if description is not None else doc_summary,
        parameters=parameters,
        strict=use_strict,
        fn=fn,
        timeout=timeout,
        sequential=sequential,
        independent=independent,
        _model=model,
        _context_param=context_param,
        _defaults_for_null=frozenset(defaults_for_null),
    )


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    sequential: bool = False,
    independent: bool = False,
    strict: bool | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    sequential: bool = False,
    independent: bool = False,
    strict: bool | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a sync or async function into a `Tool`.

    Use bare (`@tool`) or with options (`@tool(timeout=5)`).

    Args:
        fn: The function (when used bare).
        name: The tool's name; defaults to the function's name.
        description: Defaults to the docstring's text before its sections.
        timeout: Seconds a call may run; then its output reports the timeout.
        sequential: Run this tool alone, in call order, as a barrier.
        independent: Start it while the response is still streaming.
        strict: `None` = strict when the schema allows; `True` requires it.

    Raises:
        ToolDefinitionError: a parameter cannot be described (no type hint, `*args`).
    """

    def decorate(func: Callable[..., Any]) -> Tool:
        return _build(
            func,
            name=name,
            description=description,
            timeout=timeout,
            sequential=sequential,
            independent=independent,
            strict=strict,
        )

    if fn is not None:
        return decorate(fn)
    return decorate
