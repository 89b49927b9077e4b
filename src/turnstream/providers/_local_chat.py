"""Between Responses-shaped requests and llama.cpp's Chat Completions, for the local model.

Pure: `build_chat_request` turns a `GenerationRequest` into the request dict that
xllamacpp's `handle_chat_completions` takes, and `ChunkTranslator` turns the chunks
it streams back into engine deltas. Both are unit-tested without the model.

Two ways of offering tools, compared by bench/local_model.py on 32 cases (two runs,
1.5B): prompted 31 and 30 of 32 decisions right, native 29 and 30; every answer turn
in prose for both. On the 0.5B model native answer turns were 0 of 18 prose (they
echo the call), prompted 16 and 18 of 18.

- `"prompted"` (default): the tool list is written into our own system prompt in the
  shape the model imitates best, no `tools` field is sent, function calls in the
  history are replayed as the bare call objects the model writes, and calls are
  recognised in the reply text. The system prompt is byte-identical on every turn,
  so llama.cpp's prefix cache covers it, answer turns included.
- `"native"`: tools go to llama.cpp (Qwen's chat template and call parser) and the
  text fallback catches what its parser misses; on the answer turn right after tool
  outputs the tools are left out, since with them the model echoes template markup.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from turnstream.engine.deltas import (
    Delta,
    FinishDelta,
    ItemEndDelta,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    UsageDelta,
)
from turnstream.providers._text_calls import ReplySniffer
from turnstream.providers.base import GenerationRequest, ProviderError

__all__ = [
    "ASSISTANT_NAME",
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "ChatPlan",
    "ChunkTranslator",
    "ToolStrategy",
    "build_chat_request",
    "chat_tools",
    "system_prompt",
]

ToolStrategy = Literal["prompted", "native"]

ASSISTANT_NAME = "turnstream assistant"
DEFAULT_MAX_OUTPUT_TOKENS = 1024
# Qwen's recommendation is 0.7; the 1.5B model keeps to the call format more reliably
# a little cooler, and answers stay varied enough for chat.
DEFAULT_TEMPERATURE = 0.3

_PREAMBLE = (
    f"You are {ASSISTANT_NAME}, a helpful assistant running locally on this computer "
    "through turnstream. Answer clearly and concisely."
)
_TOOLS_HEADER = (
    "\n\n# Tools\n\n"
    "You can call these functions. Their signatures are inside <tools></tools>:\n<tools>"
)
_TOOLS_FOOTER = (
    "\n</tools>\n\n"
    "When a function can provide what the user asks for, reply with only a JSON object "
    'and nothing else: {"name": <function-name>, "arguments": <arguments-object>}. '
    "You will then receive the function's result and can answer the user. "
    "If no function fits, answer the user directly in plain text."
)
_IMAGE_PLACEHOLDER = "[an image was attached, but this model cannot see images]"


def chat_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flat Responses function tools -> nested Chat Completions tools."""
    nested: list[dict[str, Any]] = []
    for tool in tools:
        if tool.get("type", "function") != "function":
            continue
        function: dict[str, Any] = {"name": tool["name"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        function["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
        nested.append({"type": "function", "function": function})
    return nested


def system_prompt(
    instructions: str | None,
    tools: Sequence[Mapping[str, Any]] = (),
) -> str:
    """Our system prompt: deterministic, so identical inputs give identical bytes."""
    parts = [_PREAMBLE]
    if instructions:
        parts.append("\n\n" + instructions.strip())
    if tools:
        parts.append(_TOOLS_HEADER)
        for tool in chat_tools(tools):
            parts.append("\n" + json.dumps(tool, ensure_ascii=False))
        parts.append(_TOOLS_FOOTER)
    return "".join(parts)


def _text_of(content: Any) -> str:
    """The text of a message's content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part in content or ():
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            texts.append(part.get("text", ""))
        elif kind == "refusal":
            texts.append(part.get("refusal", ""))
        elif kind in ("input_image", "input_file"):
            texts.append(_IMAGE_PLACEHOLDER)
    return "".join(texts)


def _call_text(item: Mapping[str, Any]) -> str:
    # The arguments are replayed verbatim, even if invalid JSON: they are what was said.
    return f'{{"name": {json.dumps(item["name"])}, "arguments": {item.get("arguments") or "{}"}}}'


@dataclass(slots=True)
class ChatPlan:
    """One chat request for xllamacpp, plus how to read its reply."""

    body: dict[str, Any]
    tool_names: frozenset[str] = frozenset()
    sniff_calls: bool = False
    parallel_tool_calls: bool = True
    answer_turn: bool = False


def _offered_tools(request: GenerationRequest) -> list[Mapping[str, Any]]:
    tools = [t for t in request.tools if t.get("type", "function") == "function"]
    choice = request.tool_choice
    if choice == "none":
        return []
    if isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        allowed = {t.get("name") for t in choice.get("tools", ())}
        tools = [t for t in tools if t["name"] in allowed]
    return tools


def _forced_call_schema(
    tools: Sequence[Mapping[str, Any]], choice: str | Mapping[str, Any]
) -> dict[str, Any] | None:
    """A JSON schema that only admits a call object, when the request forces a call."""
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        tools = [t for t in tools if t["name"] == choice.get("name")]
    elif choice != "required":
        return None
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": tool["name"]},
                "arguments": tool.get("parameters") or {"type": "object"},
            },
            "required": ["name", "arguments"],
        }
        for tool in tools
    ]
    if not options:
        return None
    return options[0] if len(options) == 1 else {"anyOf": options}


def build_chat_request(
    request: GenerationRequest,
    *,
    strategy: ToolStrategy = "prompted",
    default_max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
) -> ChatPlan:
    """Translate a `GenerationRequest` into a streaming chat request for llama.cpp."""
    tools = _offered_tools(request)
    items = list(request.items)
    answer_turn = bool(items) and items[-1].get("type") == "function_call_output"
    native = strategy == "native"

    # Leading system/developer messages join the system prompt; later ones stay put.
    instructions = [request.instructions] if request.instructions else []
    while items and items[0].get("type", "message") == "message":
        if items[0].get("role") not in ("system", "developer"):
            break
        instructions.append(_text_of(items.pop(0).get("content")))
    joined = "\n\n".join(i for i in instructions if i) or None

    send_tools = native and tools and not answer_turn
    prompt_tools = tools if not native else ()
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system_prompt(joined, prompt_tools)}
    ]
    previous_kind = None
    call_names = {
        i.get("call_id"): i.get("name") for i in items if i.get("type") == "function_call"
    }
    for item in items:
        if item.get("type") == "function_call_output" and not native:
            messages.append(_result_message(item, call_names.get(item.get("call_id"))))
        else:
            _append_item(messages, item, native=native, after_call=previous_kind == "function_call")
        previous_kind = item.get("type", "message")

    body: dict[str, Any] = {
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": request.max_output_tokens or default_max_output_tokens,
        "temperature": DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
    }
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if send_tools:
        body["tools"] = chat_tools(tools)
        body["parallel_tool_calls"] = request.parallel_tool_calls
    schema = _forced_call_schema(tools, request.tool_choice)
    if schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "function_call", "schema": schema},
        }
        body.pop("tools", None)
    sniff = bool(tools) and (not native or not answer_turn)
    return ChatPlan(
        body=body,
        tool_names=frozenset(t["name"] for t in tools),
        sniff_calls=sniff,
        parallel_tool_calls=request.parallel_tool_calls,
        answer_turn=answer_turn,
    )


def _output_text(item: Mapping[str, Any]) -> str:
    output = item.get("output", "")
    return output if isinstance(output, str) else _text_of(output)


def _result_message(item: Mapping[str, Any], name: str | None) -> dict[str, Any]:
    """A tool result as a user turn that asks for the answer.

    Given Qwen's `<tool_response>` turn instead, both models often repeat the call
    they just made; told plainly what came back and what to do, they answer.
    """
    return {
        "role": "user",
        "content": f"The function {name or 'you called'} returned: {_output_text(item)}\n"
        "Use this result to answer my request in plain sentences.",
    }


def _append_item(
    messages: list[dict[str, Any]], item: Mapping[str, Any], *, native: bool, after_call: bool
) -> None:
    kind = item.get("type", "message")
    last = messages[-1] if messages else None
    if kind == "message":
        role = item.get("role", "user")
        role = "system" if role == "developer" else role
        messages.append({"role": role, "content": _text_of(item.get("content"))})
    elif kind == "function_call" and native:
        call = {
            "id": item.get("call_id", ""),
            "type": "function",
            "function": {"name": item["name"], "arguments": item.get("arguments") or "{}"},
        }
        if after_call and last is not None and "tool_calls" in last:
            last["tool_calls"].append(call)
        else:
            messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
    elif kind == "function_call":
        # Replayed as the model itself writes calls, so the history teaches the format.
        if after_call and last is not None:
            last["content"] += "\n" + _call_text(item)
        else:
            messages.append({"role": "assistant", "content": _call_text(item)})
    elif kind == "function_call_output":
        messages.append(
            {"role": "tool", "tool_call_id": item.get("call_id", ""), "content": _output_text(item)}
        )
    # reasoning and other item kinds carry nothing this model can use


class ChunkTranslator:
    """llama.cpp chat chunks -> engine deltas, with the text-call fallback."""

    def __init__(self, plan: ChatPlan) -> None:
        self._sniffer = ReplySniffer(plan.tool_names, enabled=plan.sniff_calls)
        self._parallel = plan.parallel_tool_calls
        self._native_calls: set[int] = set()
        self._finish: str | None = None
        self._usage: UsageDelta | None = None
        self.text_released = False

    def feed(self, chunk: Mapping[str, Any]) -> list[Delta]:
        """One chunk in, zero or more deltas out (text that is clearly prose)."""
        error = chunk.get("error")
        if error is not None or ("choices" not in chunk and "code" in chunk):
            detail = error if isinstance(error, Mapping) else chunk
            code = detail.get("code")
            # llama.cpp uses HTTP statuses (400 for a prompt over the context size).
            status = code if isinstance(code, int) and 400 <= code < 600 else 500
            raise ProviderError(
                f"local model failed: {detail.get('message', detail)}",
                code="model_error",
                status=status,
            )
        out: list[Delta] = []
        usage = chunk.get("usage")
        if usage:
            details = usage.get("prompt_tokens_details") or {}
            self._usage = UsageDelta(
                input_tokens=int(usage.get("prompt_tokens", 0)),
                output_tokens=int(usage.get("completion_tokens", 0)),
                cached_tokens=int(details.get("cached_tokens", 0) or 0),
            )
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                out.append(ReasoningDelta(delta["reasoning_content"]))
            if delta.get("content"):
                released = self._sniffer.feed(delta["content"])
                if released:
                    self.text_released = True
                    out.append(TextDelta(released))
            for call in delta.get("tool_calls") or ():
                index = int(call.get("index", 0))
                if not self._parallel and index > 0:
                    continue
                self._native_calls.add(index)
                function = call.get("function") or {}
                out.append(
                    ToolCallDelta(
                        index=index,
                        name=function.get("name") or None,
                        call_id=call.get("id") or None,
                        arguments=function.get("arguments") or "",
                    )
                )
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def finish(self) -> list[Delta]:
        """End of stream: held-back text or recognised calls, usage, finish reason."""
        out: list[Delta] = []
        text, calls = self._sniffer.finish()
        if text:
            self.text_released = True
            out.append(TextDelta(text))
        if calls and not self._native_calls:
            if self.text_released:
                out.append(ItemEndDelta())
            # Small models sometimes repeat a call verbatim; one of each is enough.
            unique = list(dict.fromkeys(calls))
            for index, call in enumerate(unique if self._parallel else unique[:1]):
                call_id = f"call_{uuid.uuid4().hex[:24]}"
                out.append(ToolCallDelta(index, call.name, call_id, call.arguments))
                out.append(ItemEndDelta())
        elif self.text_released or self._native_calls:
            out.append(ItemEndDelta())
        if self._usage is not None:
            out.append(self._usage)
        out.append(FinishDelta("length" if self._finish == "length" else "stop"))
        return out

    @property
    def decision(self) -> str:
        """`"call"` if the reply was a function call, else `"text"` (after `finish`)."""
        return "call" if self._native_calls or self._sniffer.decision == "call" else "text"
