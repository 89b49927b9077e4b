"""Chat Completions stream chunks -> engine deltas (pure, no I/O).

`ChatChunkTranslator.feed(chunk)` takes one decoded `chat.completion.chunk` and returns
its deltas; `finish()` returns the closing `UsageDelta` / `FinishDelta`. Unknown fields
are ignored, so the many OpenAI-compatible servers (llama.cpp, vLLM, Ollama, ...) that
add their own work unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from turnstream.engine.deltas import (
    Delta,
    FinishDelta,
    OutputTextDelta,
    ReasoningDelta,
    ToolCallDelta,
    UsageDelta,
)
from turnstream.providers.base import ProviderError

__all__ = ["ChatChunkTranslator"]

_FINISH: dict[str, Literal["length", "content_filter"]] = {
    "length": "length",
    "content_filter": "content_filter",
}


class ChatChunkTranslator:
    """Translates one upstream stream; create one per response."""

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self._usage: UsageDelta | None = None
        self._calls: dict[int, tuple[str | None, str | None]] = {}
        """Per index: the name and call id already passed on (sent once each)."""
        self._ids: dict[str, int] = {}
        self._last_index = 0

    def feed(self, chunk: Mapping[str, Any]) -> list[Delta]:
        """The deltas in one chunk.

        Raises:
            ProviderError: the chunk is an in-stream error object.
        """
        error = chunk.get("error")
        if error is not None or chunk.get("object") == "error":
            raise _stream_error(error if isinstance(error, Mapping) else chunk)
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self._usage = _usage(usage)
        delta = self._first_choice_delta(chunk)
        return self._deltas(delta) if delta is not None else []

    def _first_choice_delta(self, chunk: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The `delta` of choice 0 (recording its finish reason), if the chunk has one."""
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return None
        choice = next(
            (c for c in choices if isinstance(c, Mapping) and c.get("index", 0) == 0), None
        )
        if choice is None:
            return None
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        delta = choice.get("delta")
        return delta if isinstance(delta, Mapping) else None

    def _deltas(self, delta: Mapping[str, Any]) -> list[Delta]:
        deltas: list[Delta] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            deltas.append(ReasoningDelta(reasoning))
        for key in ("content", "refusal"):
            text = delta.get(key)
            if isinstance(text, str) and text:
                deltas.append(OutputTextDelta(text))
        tool_calls = delta.get("tool_calls")
        if isinstance(tool_calls, list):
            for call in tool_calls:
                if isinstance(call, Mapping):
                    deltas += self._tool_call(call)
        return deltas

    def finish(self) -> list[Delta]:
        """The closing deltas once the upstream stream has ended."""
        closing: list[Delta] = [self._usage] if self._usage else []
        closing.append(FinishDelta(_FINISH.get(self.finish_reason or "", "stop")))
        return closing

    def _tool_call(self, call: Mapping[str, Any]) -> list[Delta]:
        call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else None
        index = call.get("index")
        if not isinstance(index, int):
            # Some servers omit `index`; tell calls apart by id, else continue the last.
            if call_id is not None:
                index = self._ids.setdefault(call_id, len(self._calls))
            else:
                index = self._last_index
        if call_id is not None:
            self._ids.setdefault(call_id, index)
        self._last_index = index
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        name = function.get("name") if isinstance(function.get("name"), str) else None
        arguments = function.get("arguments")
        arguments = arguments if isinstance(arguments, str) else ""
        sent_name, sent_id = self._calls.get(index, (None, None))
        # Some servers repeat the name and id on every chunk: pass each on once.
        new_name = name if name and not sent_name else None
        new_id = call_id if call_id and not sent_id else None
        self._calls[index] = (sent_name or new_name, sent_id or new_id)
        if new_name is None and new_id is None and not arguments:
            return []
        return [ToolCallDelta(index=index, name=new_name, call_id=new_id, arguments=arguments)]


def _usage(usage: Mapping[str, Any]) -> UsageDelta:
    prompt = usage.get("prompt_tokens_details")
    completion = usage.get("completion_tokens_details")
    return UsageDelta(
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
        cached_tokens=_int(prompt.get("cached_tokens")) if isinstance(prompt, Mapping) else 0,
        reasoning_tokens=(
            _int(completion.get("reasoning_tokens")) if isinstance(completion, Mapping) else 0
        ),
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _stream_error(error: Mapping[str, Any]) -> ProviderError:
    code = error.get("code")
    message = error.get("message")
    return ProviderError(
        str(message) if message else "The upstream model server reported an error.",
        code=code if isinstance(code, str) and code else "server_error",
        status=502,
    )
