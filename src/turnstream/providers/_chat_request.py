"""Responses context -> Chat Completions request body (pure, no I/O).

The mapping, item by item:

- `instructions` -> the first `system` message;
- `system` / `developer` messages -> `system` messages (or `developer`, if configured),
  text parts joined;
- `user` messages -> `user` messages; a plain string when all parts are text, else
  `text` / `image_url` / `file` content parts;
- `assistant` messages -> `assistant` messages (`output_text` and `refusal` text);
- consecutive `function_call` items -> one assistant message's `tool_calls`, attached to
  the assistant text message right before them, if any;
- `function_call_output` -> a `tool` message (text parts joined);
- `reasoning` items are dropped (standard Chat Completions cannot take them back),
  unless the dialect says the upstream takes `reasoning_content` on assistant
  messages (vLLM, llama.cpp): then their text goes on the next assistant message;
- any other item type Chat Completions has no place for is dropped;
- `text.format` (`json_schema`, `json_object`) -> `response_format`.

This is the one Responses-to-Chat translator: the Chat Completions bridge uses
`build_chat_body`, and the embedded model (`_local_chat`) builds its messages with
`chat_messages` and a `ChatDialect` that says how its model wants tool calls, images
and developer messages replayed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from turnstream.providers.base import GenerationRequest, ProviderError

__all__ = ["ChatDialect", "build_chat_body", "chat_messages", "text_of"]

MaxTokensField = Literal["max_tokens", "max_completion_tokens"]

CallText = Callable[[Mapping[str, Any]], str]
"""Renders a `function_call` item as the text a model writes for it."""
ResultMessage = Callable[[Mapping[str, Any], str | None], dict[str, Any]]
"""Renders a `function_call_output` (and the called function's name) as a message."""


@dataclass(frozen=True, slots=True)
class ChatDialect:
    """How one kind of Chat model wants a Responses history replayed.

    The defaults are standard Chat Completions, which every OpenAI-compatible
    server understands.
    """

    developer_role: Literal["system", "developer"] = "system"
    """Role for `developer` messages; most open servers only know `system`."""
    image_placeholder: str | None = None
    """Text in place of image and file parts, for a model that cannot read them
    (else they are sent as Chat content parts)."""
    call_text: CallText | None = None
    """Replay function calls as assistant text in this form (else `tool_calls`)."""
    result_message: ResultMessage | None = None
    """Replay function outputs as this message (else a `tool` message)."""
    reasoning_content: bool = False
    """Send reasoning back as `reasoning_content` on the assistant message after it."""
    later_user_note: str | None = None
    """A `system` message placed after every user message that follows a reply (an
    assistant message or a function output): a reminder for a small model on the
    later turns of a conversation. Every such message gets it, not only the latest,
    so a conversation's prompt only grows at its end (a prompt cache keeps it)."""


def build_chat_body(
    request: GenerationRequest,
    upstream_model: str,
    *,
    developer_role: Literal["system", "developer"] = "system",
    max_tokens_field: MaxTokensField = "max_tokens",
    extra_body: Mapping[str, Any] | None = None,
    reasoning_content: bool = False,
) -> dict[str, Any]:
    """The JSON body of a streaming `POST /chat/completions` for `request`.

    Raises:
        ProviderError: (status 400) for input Chat Completions cannot express, such as
            an image given only by `file_id`.
    """
    body: dict[str, Any] = {
        "model": upstream_model,
        "messages": chat_messages(
            request.items,
            request.instructions,
            ChatDialect(developer_role=developer_role, reasoning_content=reasoning_content),
        ),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    tools, tool_choice = _tools(request.tools, request.tool_choice)
    if tools:
        body["tools"] = tools
        body["tool_choice"] = tool_choice
        body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.max_output_tokens is not None:
        body[max_tokens_field] = request.max_output_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.text_format is not None:
        body["response_format"] = response_format(request.text_format)
    body.update(extra_body or {})
    return body


def response_format(text_format: Mapping[str, Any]) -> dict[str, Any]:
    """Chat Completions' `response_format` for a Responses `text.format`."""
    if text_format.get("type") != "json_schema":
        return {"type": str(text_format.get("type", "json_object"))}
    schema: dict[str, Any] = {"name": text_format.get("name") or "response"}
    for key in ("description", "schema", "strict"):
        if text_format.get(key) is not None:
            schema[key] = text_format[key]
    return {"type": "json_schema", "json_schema": schema}


def chat_messages(
    items: Sequence[Mapping[str, Any]],
    instructions: str | None = None,
    dialect: ChatDialect = ChatDialect(),
) -> list[dict[str, Any]]:
    """The Chat Completions `messages` for a context of canonical wire items.

    Raises:
        ProviderError: (status 400) for content the dialect cannot express, such as
            an image given only by `file_id`.
    """
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    call_names = {
        i.get("call_id"): i.get("name") for i in items if i.get("type") == "function_call"
    }
    # True while the last message may still take the function calls that follow it.
    open_for_calls = False
    reasoning: list[str] = []  # reasoning text waiting for its assistant message
    replied = False  # an assistant message or a function output came before
    for item in items:
        kind = item.get("type", "message")
        if kind == "reasoning" and dialect.reasoning_content:
            reasoning.append(_reasoning_text(item))
            continue
        if kind == "message":
            message = _message(item, dialect)
            if message is None:
                continue
            messages.append(message)
            role = message["role"]
            if role == "user" and dialect.later_user_note and replied:
                messages.append({"role": "system", "content": dialect.later_user_note})
            open_for_calls = role == "assistant"
            replied = replied or role == "assistant"
        elif kind == "function_call":
            _append_call(messages, item, dialect, open_for_calls=open_for_calls)
            open_for_calls = True
        elif kind == "function_call_output":
            if dialect.result_message is not None:
                messages.append(dialect.result_message(item, call_names.get(item.get("call_id"))))
            else:
                text = _output_text(item, dialect)
                messages.append(
                    {"role": "tool", "tool_call_id": item.get("call_id"), "content": text}
                )
            open_for_calls = False
            replied = True
        # Reasoning items (and unknown kinds) are invisible to Chat Completions; they do
        # not break the adjacency of the function calls around them.
        if reasoning and open_for_calls:
            # the reasoning led to this assistant turn (its text or its calls)
            messages[-1].setdefault("reasoning_content", "".join(reasoning))
            reasoning = []
    return messages


def _message(item: Mapping[str, Any], dialect: ChatDialect) -> dict[str, Any] | None:
    """A message item as a Chat message (None for a role Chat has no place for)."""
    role = item.get("role")
    content = item.get("content")
    if role == "user":
        return {"role": "user", "content": _user_content(content, dialect)}
    if role == "assistant":
        return {"role": "assistant", "content": text_of(content)}
    if role in ("system", "developer"):
        chat_role = dialect.developer_role if role == "developer" else "system"
        return {"role": chat_role, "content": text_of(content)}
    return None


def _reasoning_text(item: Mapping[str, Any]) -> str:
    """A reasoning item's text: its raw `content`, else its summary."""
    for key in ("content", "summary"):
        parts = item.get(key)
        if isinstance(parts, list) and parts:
            return text_of(parts)
    return ""


def _append_call(
    messages: list[dict[str, Any]],
    item: Mapping[str, Any],
    dialect: ChatDialect,
    *,
    open_for_calls: bool,
) -> None:
    if dialect.call_text is not None:
        text = dialect.call_text(item)
        if open_for_calls and isinstance(messages[-1].get("content"), str):
            separator = "\n" if messages[-1]["content"] else ""
            messages[-1]["content"] += separator + text
        else:
            messages.append({"role": "assistant", "content": text})
        return
    call = {
        "id": item.get("call_id"),
        "type": "function",
        "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
    }
    if not open_for_calls:
        messages.append({"role": "assistant", "content": None})
    messages[-1].setdefault("tool_calls", []).append(call)


def _output_text(item: Mapping[str, Any], dialect: ChatDialect) -> str:
    output = item.get("output")
    if isinstance(output, str):
        return output
    return text_of(output, dialect.image_placeholder)


def text_of(content: object, image_placeholder: str | None = None) -> str:
    """The text of a message's content (a string or a list of parts), joined.

    Image and file parts become `image_placeholder` when one is given, else nothing.
    """
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return "" if content is None else json.dumps(content)
    texts: list[str] = []
    for part in content:
        if not isinstance(part, Mapping):
            continue
        if "text" in part:
            texts.append(str(part.get("text")))
        elif part.get("type") == "refusal":
            texts.append(str(part.get("refusal") or ""))
        elif part.get("type") in ("input_image", "input_file") and image_placeholder:
            texts.append(image_placeholder)
    return "".join(texts)


def _user_content(content: object, dialect: ChatDialect) -> str | list[dict[str, Any]]:
    if not isinstance(content, list):
        return text_of(content)
    if dialect.image_placeholder is not None:
        return text_of(content, dialect.image_placeholder)
    parts = [part for part in content if isinstance(part, Mapping)]
    if all(part.get("type") in ("input_text", "text") for part in parts):
        return "\n".join(str(part.get("text", "")) for part in parts)
    return [_user_part(part) for part in parts]


def _user_part(part: Mapping[str, Any]) -> dict[str, Any]:
    kind = part.get("type")
    if kind in ("input_text", "text"):
        return {"type": "text", "text": part.get("text", "")}
    if kind == "input_image" and part.get("image_url"):
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file" and part.get("file_data"):
        file = {"file_data": part["file_data"]}
        if part.get("filename"):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    raise ProviderError(
        f"Content part {kind!r} without inline data is not supported by this model.",
        code="unsupported_content",
        status=400,
    )


def _tools(
    tools: Sequence[Mapping[str, Any]], choice: str | Mapping[str, Any]
) -> tuple[list[dict[str, Any]], str | dict[str, Any]]:
    functions = [tool for tool in tools if tool.get("type") == "function"]
    chat_choice: str | dict[str, Any] = choice if isinstance(choice, str) else "auto"
    if isinstance(choice, Mapping):
        if choice.get("type") == "function":
            chat_choice = {"type": "function", "function": {"name": choice.get("name")}}
        elif choice.get("type") == "allowed_tools":
            allowed = {t.get("name") for t in choice.get("tools", ()) if isinstance(t, Mapping)}
            functions = [tool for tool in functions if tool.get("name") in allowed]
            chat_choice = str(choice.get("mode", "auto"))
    return [_chat_tool(tool) for tool in functions], chat_choice


def _chat_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.get("name")}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}
