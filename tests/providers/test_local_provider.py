"""LocalProvider's loading, thread bridge and cancellation, with a fake llama.cpp engine."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.providers.helpers import CLOCK as CURRENT_TIME
from tests.providers.helpers import (
    CURRENCY,
    UNITS,
    assistant,
    function_call,
    function_output,
    is_warm_up,
)
from tests.providers.helpers import WEATHER as CURRENT_WEATHER
from turnstream.engine.deltas import FinishDelta, OutputTextDelta, ToolCallDelta
from turnstream.providers._call_grammar import TEXT_GRAMMAR, call_grammar
from turnstream.providers._local_chat import CONFIRM_GRAMMAR
from turnstream.providers._local_model import LocalModelError
from turnstream.providers.base import GenerationRequest, Provider, ProviderError
from turnstream.providers.local import LocalProvider

WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}


def chunk(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def request(text: str = "Hi", **kwargs: Any) -> GenerationRequest:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return GenerationRequest("local", [item], **kwargs)


class FakeEngine:
    """Plays scripted chunks from the worker thread, like xllamacpp's Server."""

    def __init__(self, chunks: Iterable[dict[str, Any]] = (), *, delay: float = 0.0) -> None:
        self.chunks = chunks
        self.delay = delay
        self.bodies: list[dict[str, Any]] = []
        self.cancelled = threading.Event()
        self.threads: list[threading.Thread] = []

    def handle_chat_completions(
        self, prompt: dict[str, Any], callback: Callable[[dict[str, Any]], bool] | None = None
    ) -> Any:
        self.bodies.append(prompt)
        if is_warm_up(prompt):
            return {"choices": []}
        self.threads.append(threading.current_thread())
        for item in self.chunks:
            if callback(item):
                self.cancelled.set()
                return None
            time.sleep(self.delay)
        return None

    def handle_completions(
        self, prompt: dict[str, Any], callback: Callable[[dict[str, Any]], bool] | None = None
    ) -> Any:
        """llama.cpp's raw-prompt endpoint: the same script, as completion chunks."""
        if callback is None:
            return self.handle_chat_completions(prompt, None)
        return self.handle_chat_completions(prompt, lambda c: callback(as_completion(c)))


def as_completion(chat: dict[str, Any]) -> dict[str, Any]:
    """A scripted chat chunk as llama.cpp's completion endpoint streams it."""
    choices = [
        {
            "index": c["index"],
            "text": c["delta"].get("content", ""),
            "finish_reason": c["finish_reason"],
        }
        for c in chat.get("choices", ())
    ]
    return {**chat, "choices": choices} if "choices" in chat else chat


def endless() -> Iterable[dict[str, Any]]:
    while True:
        yield chunk("word ")


def provider_for(engine: FakeEngine, **kwargs: Any) -> LocalProvider:
    return LocalProvider(
        {"local": "0.5b"},
        engine_factory=lambda path: engine,
        model_path=lambda size: Path("/nonexistent.gguf"),
        **kwargs,
    )


def test_local_provider_satisfies_the_provider_protocol() -> None:
    assert isinstance(provider_for(FakeEngine()), Provider)
    assert provider_for(FakeEngine()).models() == ["local"]


async def test_stream_turns_worker_thread_chunks_into_deltas() -> None:
    provider = provider_for(FakeEngine([chunk("Hel"), chunk("lo"), chunk(finish="stop")]))
    deltas = [d async for d in provider.stream(request())]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("Hel"),
        OutputTextDelta("lo"),
    ]
    assert deltas[-1] == FinishDelta("stop")
    await provider.aclose()


async def test_a_call_written_as_text_arrives_as_one_tool_call() -> None:
    pieces = ['```json\n{"name": "get_', 'weather", "arguments": {}}', "\n```"]
    provider = provider_for(FakeEngine([*map(chunk, pieces), chunk(finish="stop")]))
    deltas = [d async for d in provider.stream(request("Weather?", tools=[WEATHER]))]
    calls = [d for d in deltas if isinstance(d, ToolCallDelta)]
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", "{}")]
    assert not any(isinstance(d, OutputTextDelta) for d in deltas)
    await provider.aclose()


async def test_closing_the_stream_cancels_generation_at_the_next_token() -> None:
    engine = FakeEngine(endless(), delay=0.01)
    provider = provider_for(engine)
    stream = provider.stream(request())
    async for delta in stream:
        assert delta == OutputTextDelta("word ")
        break
    await stream.aclose()  # type: ignore[attr-defined]
    # the endless engine only stops when cancelled: the waits catch a hang, not speed
    assert await asyncio.to_thread(engine.cancelled.wait, 10.0)
    await asyncio.to_thread(engine.threads[0].join, 10.0)
    assert not engine.threads[0].is_alive()
    await provider.aclose()


async def test_cancelling_the_consuming_task_cancels_generation() -> None:
    engine = FakeEngine(endless(), delay=0.01)
    provider = provider_for(engine)

    generating = asyncio.Event()

    async def consume() -> None:
        async for _ in provider.stream(request()):
            generating.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(generating.wait(), 10)  # cancel mid-generation, not before it
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(engine.cancelled.wait, 1.0)
    await provider.aclose()


async def test_aclose_stops_running_generations_and_waits_for_them() -> None:
    engine = FakeEngine(endless(), delay=0.01)
    provider = provider_for(engine)
    stream = provider.stream(request())
    await stream.__anext__()
    await provider.aclose()
    assert engine.cancelled.is_set()
    assert not engine.threads[0].is_alive()
    await stream.aclose()  # type: ignore[attr-defined]


async def test_warm_up_evaluates_the_system_prompt_with_the_expected_tools() -> None:
    engine = FakeEngine()
    provider = provider_for(engine, warmup_tools=[WEATHER], warmup_instructions="Be brief.")
    provider.start()
    await provider.ready()
    system = engine.bodies[0]["messages"][0]["content"]
    assert "get_weather" in system
    assert "Be brief." in system
    assert "stream" not in engine.bodies[0]
    await provider.aclose()


async def test_a_request_during_a_slow_load_gets_503_with_retry_after() -> None:
    release = threading.Event()
    engine = FakeEngine([chunk("ok"), chunk(finish="stop")])

    def slow_factory(path: Path) -> FakeEngine:
        release.wait(5)
        return engine

    provider = LocalProvider(
        {"local": "0.5b"},
        engine_factory=slow_factory,
        model_path=lambda size: Path("/x.gguf"),
        load_wait=0.05,
    )
    provider.start()
    assert provider.loading
    assert 0.0 <= provider.load_progress < 1.0
    with pytest.raises(ProviderError) as raised:
        [d async for d in provider.stream(request())]
    assert raised.value.status == 503
    assert raised.value.retry_after is not None
    release.set()
    await provider.ready()
    assert not provider.loading
    assert provider.is_ready("local")
    assert OutputTextDelta("ok") in [d async for d in provider.stream(request())]
    await provider.aclose()


async def test_closing_during_a_load_stops_it_and_a_model_waiting_its_turn_never_starts() -> None:
    # Ctrl-C while `serve` loads used to wait for every model's whole load (70-90 s
    # on a busy machine): the first one's and then, still, the second one's.
    building, release = threading.Event(), threading.Event()
    built: list[Path] = []
    engine = FakeEngine()

    def slow_factory(path: Path) -> FakeEngine:
        built.append(path)
        building.set()
        release.wait(10)  # llama.cpp's server cannot be interrupted while it builds
        return engine

    provider = LocalProvider(
        {"local": "1.5b", "local-small": "0.5b"},
        engine_factory=slow_factory,
        model_path=lambda size: Path(f"/{size}.gguf"),
    )
    provider.start()
    assert await asyncio.to_thread(building.wait, 10)
    closing = asyncio.create_task(provider.aclose())
    await asyncio.sleep(0.05)
    assert not closing.done(), "the build in progress is waited for"
    release.set()
    await asyncio.wait_for(closing, 10)
    assert built == [Path("/1.5b.gguf")], "the second model must not start loading"
    assert engine.bodies == [], "a closed provider skips the warm-up"
    assert not provider.is_ready("local")


async def test_a_failed_load_is_a_503_that_says_what_to_install() -> None:
    def broken(path: Path) -> FakeEngine:
        raise LocalModelError("run: pip install 'turnstream[local]'")

    provider = LocalProvider(
        {"local": "0.5b"}, engine_factory=broken, model_path=lambda size: Path("/x.gguf")
    )
    provider.start()
    with pytest.raises(LocalModelError):
        await provider.ready()
    with pytest.raises(ProviderError, match=r"turnstream\[local\]") as raised:
        [d async for d in provider.stream(request())]
    assert raised.value.status == 503
    await provider.aclose()


async def test_a_model_left_out_of_preload_loads_on_its_first_use() -> None:
    # The terminal chat preloads only its own model: the other one's load would
    # compete with the chat's first turns for the cores.
    built: list[Path] = []

    def factory(path: Path) -> FakeEngine:
        built.append(path)
        return FakeEngine([chunk("ok"), chunk(finish="stop")])

    provider = LocalProvider(
        {"local": "1.5b", "local-small": "0.5b"},
        preload=("local", "not-served"),
        engine_factory=factory,
        model_path=lambda size: Path(f"/{size}.gguf"),
    )
    assert provider.load_state("local") == "on_first_use"
    provider.start()
    await provider.ready("local")
    assert provider.load_state("local") == "ready"
    assert provider.load_state("local-small") == "on_first_use"
    assert not provider.loading
    assert built == [Path("/1.5b.gguf")]

    provider.start("local-small")
    assert provider.load_state("local-small") == "loading"
    await provider.ready("local-small")
    assert provider.load_state("local-small") == "ready"
    assert built == [Path("/1.5b.gguf"), Path("/0.5b.gguf")]
    await provider.aclose()


async def test_a_failed_load_reads_failed_and_the_next_request_tries_again() -> None:
    attempts: list[int] = []

    def flaky(path: Path) -> FakeEngine:
        attempts.append(1)
        if len(attempts) == 1:
            raise LocalModelError("out of memory")
        return FakeEngine([chunk("ok"), chunk(finish="stop")])

    provider = LocalProvider(
        {"local": "0.5b"}, engine_factory=flaky, model_path=lambda size: Path("/x.gguf")
    )
    provider.start()
    with pytest.raises(LocalModelError):
        await provider.ready()
    assert provider.load_state("local") == "failed"
    assert OutputTextDelta("ok") in [d async for d in provider.stream(request())]
    assert provider.load_state("local") == "ready"
    assert len(attempts) == 2
    await provider.aclose()


async def test_an_unknown_model_is_a_400() -> None:
    provider = provider_for(FakeEngine())
    with pytest.raises(ProviderError) as raised:
        [d async for d in provider.stream(GenerationRequest("nope", []))]
    assert raised.value.status == 400
    await provider.aclose()


async def test_an_engine_failure_mid_stream_raises_provider_error() -> None:
    class Exploding(FakeEngine):
        def handle_chat_completions(self, prompt: dict[str, Any], callback: Any = None) -> Any:
            if is_warm_up(prompt):
                return {}
            callback(chunk("partial"))
            raise RuntimeError("llama.cpp exploded")

    provider = provider_for(Exploding())
    seen: list[object] = []

    async def consume() -> None:
        async for delta in provider.stream(request()):
            seen.append(delta)

    with pytest.raises(ProviderError, match="exploded"):
        await consume()
    assert seen == [OutputTextDelta("partial")]
    await provider.aclose()


class ScriptedReplies(FakeEngine):
    """Plays one scripted reply per completion, in order."""

    def __init__(self, *replies: Iterable[dict[str, Any]]) -> None:
        super().__init__()
        self.replies = list(replies)

    def handle_chat_completions(
        self, prompt: dict[str, Any], callback: Callable[[dict[str, Any]], bool] | None = None
    ) -> Any:
        if not is_warm_up(prompt):
            self.chunks = self.replies.pop(0)
        return super().handle_chat_completions(prompt, callback)

    def streamed(self) -> list[dict[str, Any]]:
        """The bodies of real completions (not the warm-up)."""
        return [body for body in self.bodies if not is_warm_up(body)]


CLOCK = {
    "type": "function",
    "name": "get_time",
    "description": "Current time in an IANA timezone such as Asia/Tokyo.",
    "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}},
}


def tokyo_answered(message: str) -> list[dict[str, Any]]:
    """`message`, then a `get_time` call for Asia/Tokyo and its result: an answer turn."""
    return [
        request(message).items[0],
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_time",
            "arguments": '{"timezone": "Asia/Tokyo"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "10:40 Asia/Tokyo"},
    ]


def call_reply(timezone: str) -> list[dict[str, Any]]:
    text = json.dumps({"name": "get_time", "arguments": {"timezone": timezone}})
    return [chunk(text), chunk(finish="stop")]


TURN = "<|im_start|>assistant\n"


def assert_text_pass(first: dict[str, Any], text: dict[str, Any]) -> None:
    """`text` is the plain-text pass: the first prompt (which llama.cpp holds), then a
    system line asking for prose, under the grammar that admits no call."""
    head = first["prompt"].removesuffix(TURN)
    assert text["prompt"].startswith(head), "the first prompt, cached"
    added = text["prompt"][len(head) :]
    assert added.startswith("<|im_start|>system\n"), added
    assert "without calling or mentioning any function" in added
    assert added.endswith(TURN)
    assert text["grammar"] == TEXT_GRAMMAR
    assert not text.get("grammar_lazy")


async def test_a_copied_example_is_rejected_and_the_model_re_samples_once_with_the_reason() -> None:
    engine = ScriptedReplies(
        call_reply("Asia/Tokyo"),
        [chunk("Hello!"), chunk(finish="stop")],
        [chunk("Fine, thanks!"), chunk(finish="stop")],
    )
    provider = provider_for(engine)
    deltas = [d async for d in provider.stream(request("Hi! How are you?", tools=[CLOCK]))]
    assert not any(isinstance(d, ToolCallDelta) for d in deltas)
    assert deltas[-1] == FinishDelta("stop")
    first, second, third = engine.streamed()
    # the re-sample is the same prompt (under the same call grammar), then the rejected
    # call and the reason
    assert second["prompt"].startswith(first["prompt"].removesuffix(TURN))
    assert second["grammar"] == first["grammar"]
    reason = second["prompt"].rsplit("<|im_start|>user\n", 1)[1]
    assert "Asia/Tokyo" in reason
    # it may only call again: its prose would answer that reason, about functions
    # ("The function get_time is not ..."), so the grammar holds it to a call from its
    # first token (the first pass's grammar waits for a call to start)
    assert first["grammar_lazy"] is True
    assert second["grammar_lazy"] is False
    assert "grammar_triggers" not in second
    # prose all the same (the engine here ignores grammars): the text pass answers
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("Fine, thanks!")
    ]
    assert_text_pass(first, third)
    await provider.aclose()


async def test_a_re_sample_after_an_echo_may_answer_in_prose() -> None:
    # only a re-sample after a rejected call is held to calls: one after an echoed
    # result message is asked for the answer
    echo = "The function get_time returned: 10:40 Asia/Tokyo\nMy request was: Time in Tokyo?"
    engine = ScriptedReplies(
        [chunk(echo), chunk(finish="stop")], [chunk("It is 10:40."), chunk(finish="stop")]
    )
    provider = provider_for(engine)
    items = tokyo_answered("Time in Tokyo?")
    deltas = [d async for d in provider.stream(GenerationRequest("local", items, tools=[CLOCK]))]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("It is 10:40.")
    ]
    assert len(engine.streamed()) == 2
    await provider.aclose()


class LoggedReplies(ScriptedReplies):
    """Scripted replies that log when each completion starts and returns."""

    def __init__(self, *replies: Iterable[dict[str, Any]]) -> None:
        super().__init__(*replies)
        self.log: list[str] = []

    def handle_chat_completions(
        self, prompt: dict[str, Any], callback: Callable[[dict[str, Any]], bool] | None = None
    ) -> Any:
        if is_warm_up(prompt):
            return super().handle_chat_completions(prompt, callback)
        self.log.append("start")
        try:
            return super().handle_chat_completions(prompt, callback)
        finally:
            self.log.append("cancelled" if self.cancelled.is_set() else "returned")
            self.cancelled.clear()


async def test_a_call_rejected_as_soon_as_it_is_whole_stops_its_generation_first() -> None:
    # after the call the model would go on writing (a fence, more calls): bounded
    # here, so that a provider that waits for the reply's end fails, not hangs
    (call,) = call_reply("Asia/Tokyo")[:1]
    trailing = [chunk(" and more") for _ in range(20_000)]
    engine = LoggedReplies(
        [call, *trailing, chunk(finish="stop")],
        [chunk("Hello!"), *trailing, chunk(finish="stop")],  # prose: stopped too
        [chunk("Fine!"), chunk(finish="stop")],
    )
    engine.delay = 0.0005
    provider = provider_for(engine)
    deltas = [d async for d in provider.stream(request("Hi! How are you?", tools=[CLOCK]))]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [OutputTextDelta("Fine!")]
    # each stopped generation was cancelled, and had returned before the next began
    # (so the next finds that slot, and the prompt it holds, free)
    assert engine.log == ["start", "cancelled", "start", "cancelled", "start", "returned"]
    await provider.aclose()


async def test_a_call_that_runs_away_is_stopped_and_re_sampled_before_the_token_limit() -> None:
    def runaway_call() -> Iterable[dict[str, Any]]:
        yield chunk('{"name": "get_time", "arguments": {"timezone": "1')
        for _ in range(20_000):  # what the 0.5B once did, to the token limit
            yield chunk("+1")
        yield chunk(finish="length")

    engine = LoggedReplies(runaway_call(), [chunk("It is 2."), chunk(finish="stop")])
    engine.delay = 0.0005  # a model's pace, roughly: the stop must come mid-generation
    provider = provider_for(engine)
    deltas = [d async for d in provider.stream(request("What is 1 plus 1?", tools=[CLOCK]))]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [OutputTextDelta("It is 2.")]
    assert engine.log == ["start", "cancelled", "start", "returned"]
    _first, second = engine.streamed()
    assert "did not finish" in second["prompt"].rsplit("<|im_start|>user\n", 1)[1]
    await provider.aclose()


def assert_first_prompt_alone(first: dict[str, Any], text: dict[str, Any]) -> None:
    """`text` is the first prompt again (all of it in llama.cpp's cache, no line after
    it), under the grammar that admits no call."""
    assert text["prompt"] == first["prompt"]
    assert text["grammar"] == TEXT_GRAMMAR
    assert not text.get("grammar_lazy")


async def test_an_imagined_function_for_a_greeting_is_answered_on_the_first_prompt_at_its_name() -> (
    None
):
    # the grammar would go on with `, "arguments": {}}` and whatever follows: bounded
    # here, so that a provider that waits for them fails, not hangs
    head = [chunk('{"name": "greeting"'), *(chunk(" ") for _ in range(20_000))]
    engine = LoggedReplies([*head, chunk(finish="stop")], [chunk("Hello!"), chunk(finish="stop")])
    engine.delay = 0.0005
    provider = provider_for(engine, call_grounding=True)
    deltas = [d async for d in provider.stream(request("Hi!", tools=[CLOCK]))]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [OutputTextDelta("Hello!")]
    assert engine.log == ["start", "cancelled", "start", "returned"]
    first, second = engine.streamed()
    assert_first_prompt_alone(first, second)
    await provider.aclose()


async def test_talk_on_the_first_prompt_after_an_imagined_function_goes_to_the_text_pass() -> None:
    talk = "To translate good morning, I'll use the `translate` function."
    engine = ScriptedReplies(
        [chunk('{"name": "translate", "arguments": {}}'), chunk(finish="stop")],
        [chunk(talk[:20]), chunk(talk[20:]), chunk(finish="stop")],
        [chunk("¡Buenos días!"), chunk(finish="stop")],
    )
    provider = provider_for(engine, call_grounding=True)
    message = "Say good morning in Spanish."
    deltas = [d async for d in provider.stream(request(message, tools=[CLOCK]))]
    # the talk was held to the end of its first sentence, and never went out
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("¡Buenos días!")
    ]
    first, alone, text = engine.streamed()
    assert_first_prompt_alone(first, alone)
    assert_text_pass(first, text)
    await provider.aclose()


async def test_an_imagined_function_in_an_answer_turn_goes_to_the_text_pass() -> None:
    # after a result, the first prompt alone ends with the result message, whose end
    # the 1.5B went on with: the text pass's line asks for the answer instead
    engine = ScriptedReplies(
        [chunk('{"name": "greeting", "arguments": {}}'), chunk(finish="stop")],
        [chunk("It is 10:40."), chunk(finish="stop")],
    )
    provider = provider_for(engine, call_grounding=True)
    items = tokyo_answered("Hi!")
    deltas = [d async for d in provider.stream(GenerationRequest("local", items, tools=[CLOCK]))]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("It is 10:40.")
    ]
    first, text = engine.streamed()
    assert_text_pass(first, text)
    await provider.aclose()


async def test_an_answer_that_repeats_the_tool_result_message_is_re_sampled_with_the_reason() -> (
    None
):
    echo = "The function get_time returned: 10:40 Asia/Tokyo\nMy request was: Time in Tokyo?"
    # the model would go on (the message again, and again): bounded here, so that a
    # provider that waits for the reply's end fails, not hangs
    again = [chunk(echo[i : i + 5]) for i in range(0, len(echo), 5)] * 400
    engine = LoggedReplies(
        [*again, chunk(finish="stop")], [chunk("It is 10:40 in Tokyo."), chunk(finish="stop")]
    )
    engine.delay = 0.0005
    provider = provider_for(engine, call_grounding=True)
    items = tokyo_answered("Time in Tokyo?")
    deltas = [d async for d in provider.stream(GenerationRequest("local", items, tools=[CLOCK]))]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("It is 10:40 in Tokyo.")
    ]
    assert engine.log == ["start", "cancelled", "start", "returned"], "stopped at the echo"
    _first, second = engine.streamed()
    prompt = second.get("prompt") or second["messages"][-1]["content"]
    assert "Do not repeat my message" in prompt
    await provider.aclose()


async def test_a_re_sample_that_copies_again_ends_in_text_decoded_under_the_text_grammar() -> None:
    engine = ScriptedReplies(
        call_reply("Asia/Tokyo"), call_reply("Asia/Tokyo"), [chunk("Hi!"), chunk(finish="stop")]
    )  # the re-sample copies again: a call, so it is reviewed as the first was
    provider = provider_for(engine)
    deltas = [d async for d in provider.stream(request("Hi!", tools=[CLOCK]))]
    assert not any(isinstance(d, ToolCallDelta) for d in deltas)
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [OutputTextDelta("Hi!")]
    assert deltas[-1] == FinishDelta("stop")
    first, _second, third = engine.streamed()  # never a fourth: no loop
    # the text pass is the first prompt (all of it cached) and a line asking for
    # prose, under a grammar that admits no call, not the lazy call grammar
    assert_text_pass(first, third)
    await provider.aclose()


async def test_a_re_sample_that_calls_the_named_function_well_goes_out() -> None:
    engine = ScriptedReplies(call_reply("Asia/Tokyo"), call_reply("Europe/Lisbon"))
    provider = provider_for(engine)
    deltas = [d async for d in provider.stream(request("Time in Lisbon?", tools=[CLOCK]))]
    calls = [d for d in deltas if isinstance(d, ToolCallDelta) and d.name]
    assert [c.name for c in calls] == ["get_time"]
    arguments = "".join(d.arguments for d in deltas if isinstance(d, ToolCallDelta))
    assert json.loads(arguments) == {"timezone": "Europe/Lisbon"}
    assert len(engine.streamed()) == 2
    await provider.aclose()


async def test_an_ungrounded_call_goes_to_the_text_pass_only_while_grounding_is_on() -> None:
    greeting = "Hi! How are you today?"
    on = ScriptedReplies(call_reply("America/New_York"), [chunk("Fine!"), chunk(finish="stop")])
    provider = provider_for(on)
    deltas = [d async for d in provider.stream(request(greeting, tools=[CLOCK]))]
    assert not any(isinstance(d, ToolCallDelta) for d in deltas)
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [OutputTextDelta("Fine!")]
    # no re-sample with a reason: the first prompt again, which llama.cpp holds,
    # under the grammar that admits no call
    first, text = on.streamed()
    assert_text_pass(first, text)
    await provider.aclose()
    off = ScriptedReplies(call_reply("America/New_York"))
    provider = provider_for(off, call_grounding=False)
    deltas = [d async for d in provider.stream(request(greeting, tools=[CLOCK]))]
    assert [d.name for d in deltas if isinstance(d, ToolCallDelta) and d.name] == ["get_time"]
    assert len(off.streamed()) == 1
    await provider.aclose()


async def test_a_call_with_the_user_s_values_is_sampled_once() -> None:
    engine = ScriptedReplies(call_reply("Europe/Paris"))
    provider = provider_for(engine)
    deltas = [d async for d in provider.stream(request("Time in Europe/Paris?", tools=[CLOCK]))]
    assert [d.name for d in deltas if isinstance(d, ToolCallDelta)] == ["get_time"]
    assert len(engine.streamed()) == 1
    await provider.aclose()


WEATHER_CITY = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def weather_reply(city: str) -> list[dict[str, Any]]:
    text = json.dumps({"name": "get_weather", "arguments": {"city": city}})
    return [chunk(text), chunk(finish="stop")]


async def test_a_call_to_a_tool_the_message_does_not_name_is_checked_and_goes_out_on_yes() -> None:
    engine = ScriptedReplies(weather_reply("Brazil"), [chunk("yes"), chunk(finish="stop")])
    provider = provider_for(engine, call_check=True)
    # it asks for another tool (a message that asks for none is the review's), with
    # no call due for it (capitalised, "Brazil" holds the reply to the clock's call,
    # and a call the message does not ask for is sent back for that)
    message = "What time is it in brazil?"
    deltas = [
        d async for d in provider.stream(request(message, tools=[WEATHER_CITY, CURRENT_TIME]))
    ]
    calls = [d for d in deltas if isinstance(d, ToolCallDelta)]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Brazil"})
    ]
    assert not any(isinstance(d, OutputTextDelta) for d in deltas)
    assert isinstance(deltas[-1], FinishDelta)
    first, check = engine.streamed()
    # the first prompt (cached), the call, and the question, for one word
    assert check["prompt"].startswith(first["prompt"].removesuffix(TURN))
    asked = check["prompt"][len(first["prompt"]) - len(TURN) :]
    assert '{"name": "get_weather", "arguments": {"city": "Brazil"}}' in asked
    assert "Weather for a city." in asked
    assert message in asked
    assert check["grammar"] == CONFIRM_GRAMMAR
    assert check["max_tokens"] <= 3
    await provider.aclose()


async def test_a_call_the_check_says_no_to_is_not_run_and_the_text_pass_answers() -> None:
    engine = ScriptedReplies(
        weather_reply("Brazil"),
        [chunk("no"), chunk(finish="stop")],
        [chunk("They speak Portuguese."), chunk(finish="stop")],
    )
    provider = provider_for(engine, call_check=True)
    message = "What time is it in brazil?"  # (no call due: see above)
    deltas = [
        d async for d in provider.stream(request(message, tools=[WEATHER_CITY, CURRENT_TIME]))
    ]
    assert not any(isinstance(d, ToolCallDelta) for d in deltas)
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("They speak Portuguese.")
    ]
    first, check, text = engine.streamed()
    assert check["grammar"] == CONFIRM_GRAMMAR
    assert_text_pass(first, text)
    await provider.aclose()


@pytest.mark.parametrize(
    ("message", "options"),
    [
        # the message names what it does
        ("What's the weather in Brazil?", {"call_check": True}),
        ("What time is it in brazil?", {}),  # off by default
        ("What time is it in brazil?", {"call_check": True, "call_grounding": False}),
    ],
)
async def test_a_call_is_not_checked_when_the_message_asks_for_it_or_the_check_is_off(
    message: str, options: dict[str, bool]
) -> None:
    engine = ScriptedReplies(weather_reply("Brazil"))
    provider = provider_for(engine, **options)
    tools = [WEATHER_CITY, CURRENT_TIME]
    deltas = [d async for d in provider.stream(request(message, tools=tools))]
    assert [d.name for d in deltas if isinstance(d, ToolCallDelta) and d.name] == ["get_weather"]
    assert len(engine.streamed()) == 1
    await provider.aclose()


async def test_a_first_call_for_a_message_that_asks_for_no_tool_is_answered_on_the_first_prompt() -> (
    None
):
    # every value was said (Brazil), but the message asks for a language, not weather
    engine = ScriptedReplies(
        weather_reply("Brazil"), [chunk("They speak Portuguese."), chunk(finish="stop")]
    )
    provider = provider_for(engine)
    message = "What language do they speak in Brazil?"
    deltas = [d async for d in provider.stream(request(message, tools=[WEATHER_CITY]))]
    assert not any(isinstance(d, ToolCallDelta) for d in deltas)
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("They speak Portuguese.")
    ]
    first, alone = engine.streamed()  # no re-sample
    assert_first_prompt_alone(first, alone)
    await provider.aclose()


async def test_talk_on_the_first_prompt_after_an_unrelated_call_goes_to_the_text_pass() -> None:
    talk = "To get the current weather in Brazil, you can call the `get_weather` function."
    engine = ScriptedReplies(
        weather_reply("Brazil"),
        [chunk(talk), chunk(finish="stop")],
        [chunk("They speak Portuguese."), chunk(finish="stop")],
    )
    provider = provider_for(engine)
    message = "What language do they speak in Brazil?"
    deltas = [d async for d in provider.stream(request(message, tools=[WEATHER_CITY]))]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("They speak Portuguese.")
    ]
    first, alone, text = engine.streamed()
    assert_first_prompt_alone(first, alone)
    assert_text_pass(first, text)
    await provider.aclose()


REFUSAL = "I'm sorry, but I can't assist with that."


async def test_a_stock_refusal_after_an_unrelated_call_is_answered_without_the_tools() -> None:
    # "Kids are finally asleep, ..." (heldout9, seen): a clock call rejected, then the
    # first prompt alone gave the stock refusal to a message that asks for nothing
    engine = ScriptedReplies(
        weather_reply("Brazil"),
        [chunk(REFUSAL), chunk(finish="stop")],
        [chunk("Enjoy the quiet!"), chunk(finish="stop")],
    )
    provider = provider_for(engine)
    message = "Back from Brazil and finally home, it's just me and a mug of tea now."
    deltas = [d async for d in provider.stream(request(message, tools=[WEATHER_CITY]))]
    assert [d.text for d in deltas if isinstance(d, OutputTextDelta)] == ["Enjoy the quiet!"]
    assert isinstance(deltas[-1], FinishDelta)
    first, alone, without = engine.streamed()  # no text pass
    assert_first_prompt_alone(first, alone)
    assert "get_weather" not in without["prompt"], "no tool described"
    assert without["prompt"].endswith(message + "<|im_end|>\n<|im_start|>assistant\n")
    await provider.aclose()


async def test_a_stock_refusal_of_a_request_after_an_unrelated_call_goes_out() -> None:
    # a refusal is the answer to a request no tool fits: the tool-less pass, tried
    # for it, answered "Book me a flight to Rome" with "Sure, I can help you book ..."
    engine = ScriptedReplies(weather_reply("Brazil"), [chunk(REFUSAL), chunk(finish="stop")])
    provider = provider_for(engine)
    message = "Book me a flight to Brazil for next Friday."
    deltas = [d async for d in provider.stream(request(message, tools=[WEATHER_CITY]))]
    assert [d.text for d in deltas if isinstance(d, OutputTextDelta)] == [REFUSAL]
    first, alone = engine.streamed()
    assert_first_prompt_alone(first, alone)
    await provider.aclose()


async def test_a_stock_refusal_in_the_text_pass_is_answered_without_the_tools() -> None:
    # talk first, then the text pass refused: the same last resort
    engine = ScriptedReplies(
        [chunk(TALK), chunk(finish="stop")],
        [chunk(REFUSAL), chunk(finish="stop")],
        [chunk("Sounds like a lovely evening."), chunk(finish="stop")],
    )
    provider = provider_for(engine)
    message = "The living room lights are so cosy tonight."
    deltas = [d async for d in provider.stream(request(message, tools=[WEATHER_CITY]))]
    texts = [d.text for d in deltas if isinstance(d, OutputTextDelta)]
    assert texts == ["Sounds like a lovely evening."]
    first, text, without = engine.streamed()
    assert_text_pass(first, text)
    assert "get_weather" not in without["prompt"], "no tool described"
    await provider.aclose()


async def test_a_stock_refusal_with_no_call_rejected_goes_out() -> None:
    # the first pass itself refused (nothing rejected): a refusal is an answer
    engine = ScriptedReplies([chunk(REFUSAL), chunk(finish="stop")])
    provider = provider_for(engine)
    message = "Book me a flight to Rome for next Friday."
    deltas = [d async for d in provider.stream(request(message, tools=[WEATHER_CITY]))]
    assert "".join(d.text for d in deltas if isinstance(d, OutputTextDelta)) == REFUSAL
    assert len(engine.streamed()) == 1
    await provider.aclose()


# -- a first reply that talks about calling a function (TalkGuard) --------------------

TALK = "To turn off the lights, you can use the `turn_off_lights` function."


async def test_talk_about_a_function_for_a_message_that_asks_for_no_tool_goes_to_the_text_pass() -> (
    None
):
    engine = ScriptedReplies(
        [chunk(TALK), chunk(finish="stop")],
        [chunk("I can't control your lights."), chunk(finish="stop")],
    )
    provider = provider_for(engine)
    message = "Turn off the lights in the living room."
    deltas = [d async for d in provider.stream(request(message, tools=[WEATHER_CITY]))]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("I can't control your lights.")
    ]
    first, text = engine.streamed()
    assert_text_pass(first, text)
    await provider.aclose()


async def test_talk_in_the_text_pass_too_goes_to_the_last_pass() -> None:
    # "can you put my phone on silent till 3pm": the same talk of a "set_alarm"
    # function in the first pass and in the text pass, which went out
    engine = ScriptedReplies(
        [chunk(TALK), chunk(finish="stop")],
        [chunk(TALK), chunk(finish="stop")],
        [chunk("I can't control your lights."), chunk(finish="stop")],
    )
    provider = provider_for(engine)
    message = "Turn off the lights in the living room."
    deltas = [d async for d in provider.stream(request(message, tools=[WEATHER_CITY]))]
    texts = [d.text for d in deltas if isinstance(d, OutputTextDelta)]
    assert texts == ["I can't control your lights."]
    first, text, last = engine.streamed()
    assert_text_pass(first, text)
    assert_first_prompt_alone(first, last)
    await provider.aclose()


async def test_talk_about_a_function_for_a_message_that_asks_for_one_is_re_sampled_for_the_call() -> (
    None
):
    # (a weather request is held for its call at its first prose: `topic_tools`)
    talk = "To convert 42 km to miles, I'll need to call the convert_units function."
    conversion = {
        "name": "convert_units",
        "arguments": {"value": 42, "from_unit": "km", "to_unit": "mi"},
    }
    engine = ScriptedReplies(
        [chunk(talk), chunk(finish="stop")],
        [chunk(json.dumps(conversion)), chunk(finish="stop")],
    )
    provider = provider_for(engine)
    message = "How many miles is 42 km?"
    deltas = [d async for d in provider.stream(request(message, tools=[UNITS]))]
    assert not [d for d in deltas if isinstance(d, OutputTextDelta)]
    calls = [d for d in deltas if isinstance(d, ToolCallDelta) and d.name]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("convert_units", {"value": 42, "from_unit": "km", "to_unit": "mi"})
    ]
    _first, second = engine.streamed()
    reason = second["prompt"].rsplit("<|im_start|>user\n", 1)[1]
    assert "You wrote about a function instead of calling it." in reason
    await provider.aclose()


async def test_prose_for_a_lookup_a_tool_gives_is_decoded_again_as_its_call() -> None:
    # "Which is warmer right now, Tokyo or Sydney?": "Tokyo is warmer right now."
    engine = ScriptedReplies(
        [chunk("Tokyo is warmer right now."), chunk(finish="stop")], weather_reply("Tokyo")
    )
    provider = provider_for(engine)
    message = "Which is warmer right now, Tokyo or Sydney?"
    tools = [WEATHER_CITY, UNITS]
    deltas = [d async for d in provider.stream(request(message, tools=tools))]
    assert not [d for d in deltas if isinstance(d, OutputTextDelta)]
    calls = [d for d in deltas if isinstance(d, ToolCallDelta) and d.name]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Tokyo"})
    ]
    first, second = engine.streamed()
    assert second["prompt"] == first["prompt"], "the same prompt (cached), no reason added"
    assert second["grammar"] == call_grammar([WEATHER_CITY], others=False)
    await provider.aclose()


async def test_a_text_pass_that_writes_out_its_own_line_is_answered_on_the_first_prompt() -> None:
    # the 0.5B answered with the text pass's system line itself
    line = "Now reply to the user in plain text, without calling or mentioning any function."
    engine = ScriptedReplies(
        [chunk(TALK), chunk(finish="stop")],
        [chunk(line), chunk(finish="stop")],
        [chunk("I can't control your lights."), chunk(finish="stop")],
    )
    provider = provider_for(engine)
    message = "Turn off the lights in the living room."
    deltas = [d async for d in provider.stream(request(message, tools=[WEATHER_CITY]))]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("I can't control your lights.")
    ]
    assert isinstance(deltas[-1], FinishDelta)
    first, text, last = engine.streamed()
    assert_text_pass(first, text)
    assert last["prompt"] == first["prompt"], "the first prompt alone, cached"
    assert last["grammar"] == TEXT_GRAMMAR
    await provider.aclose()


@pytest.mark.parametrize(
    ("bare", "answer"),
    [
        # without the tools described, it answers as a chat does
        ("Happy to hear it went well!", "Happy to hear it went well!"),
        # and if it still talks about a function: the note
        (TALK, "I can't do that: none of my tools does it."),
    ],
)
async def test_a_turn_whose_every_pass_talks_about_a_function_is_answered_without_the_tools(
    bare: str, answer: str
) -> None:
    # chitchat-24 (tune): every pass talked about `create_reminder`, the last one too
    line = "Now reply to the user in plain text, without calling or mentioning any function."
    engine = ScriptedReplies(
        [chunk(TALK), chunk(finish="stop")],
        [chunk(line), chunk(finish="stop")],
        [chunk(TALK), chunk(finish="stop")],
        [chunk(bare), chunk(finish="stop")],
    )
    provider = provider_for(engine)
    message = "Turn off the lights in the living room."
    deltas = [d async for d in provider.stream(request(message, tools=[WEATHER_CITY]))]
    assert [d.text for d in deltas if isinstance(d, OutputTextDelta)] == [answer]
    assert isinstance(deltas[-1], FinishDelta)
    first, _text, last, without = engine.streamed()
    assert last["prompt"] == first["prompt"], "the first prompt alone, with the tools"
    assert "get_weather" in first["prompt"]
    assert "get_weather" not in without["prompt"], "no tool described"
    assert without["prompt"].endswith(message + "<|im_end|>\n<|im_start|>assistant\n")
    assert without["grammar"] == TEXT_GRAMMAR
    await provider.aclose()


async def test_a_figure_worked_out_in_the_head_is_re_sampled_as_the_call_that_computes_it() -> None:
    conversion = {
        "name": "convert_units",
        "arguments": {"value": 42, "from_unit": "km", "to_unit": "mi"},
    }
    engine = ScriptedReplies(
        [chunk("42 km is 26.21371 miles."), chunk(finish="stop")],
        [chunk(json.dumps(conversion)), chunk(finish="stop")],
    )
    provider = provider_for(engine)
    message = "How many miles is 42 km?"
    deltas = [d async for d in provider.stream(request(message, tools=[UNITS]))]
    assert not [d for d in deltas if isinstance(d, OutputTextDelta)], "the made-up figure"
    calls = [d for d in deltas if isinstance(d, ToolCallDelta) and d.name]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("convert_units", {"value": 42, "from_unit": "km", "to_unit": "mi"})
    ]
    _first, second = engine.streamed()
    reason = second["prompt"].rsplit("<|im_start|>user\n", 1)[1]
    assert "Do not work out figures yourself" in reason
    assert "convert_units" in reason
    await provider.aclose()


async def test_a_re_sample_that_answers_the_figure_reason_in_prose_goes_to_the_text_pass() -> None:
    engine = ScriptedReplies(
        [chunk("42 km is 26.21371 miles."), chunk(finish="stop")],
        [chunk("I apologise, the figure was wrong."), chunk(finish="stop")],
        [chunk("I could not work it out."), chunk(finish="stop")],
    )
    provider = provider_for(engine)
    message = "How many miles is 42 km?"
    deltas = [d async for d in provider.stream(request(message, tools=[UNITS]))]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("I could not work it out.")
    ]
    first, _second, text = engine.streamed()
    assert_text_pass(first, text)
    await provider.aclose()


async def test_with_the_tools_withheld_the_reply_is_decoded_under_the_grammar_that_admits_no_call() -> (
    None
):
    # the runtime's last turn (tool_choice "none"): the 1.5B wrote its next call as
    # text, and it reached the user as the answer
    engine = ScriptedReplies([chunk("The result is 191.14 EUR."), chunk(finish="stop")])
    provider = provider_for(engine)
    message = "Convert 250 GBP to EUR, then subtract 100."
    deltas = [d async for d in provider.stream(request(message, tools=[UNITS], tool_choice="none"))]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("The result is 191.14 EUR.")
    ]
    (body,) = engine.streamed()
    assert body["grammar"] == TEXT_GRAMMAR
    assert "grammar_lazy" not in body
    assert "function" not in body["prompt"].split("<|im_end|>")[0], "no tools in the prompt"
    await provider.aclose()


async def test_without_tools_the_reply_is_not_constrained() -> None:
    engine = ScriptedReplies([chunk('{"a": 1}'), chunk(finish="stop")])
    provider = provider_for(engine)
    deltas = [d async for d in provider.stream(request("Some JSON, please."))]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [OutputTextDelta('{"a": 1}')]
    (body,) = engine.streamed()
    assert "grammar" not in body
    await provider.aclose()


def clock_refused(message: str) -> list[dict[str, Any]]:
    """`message`, then a `get_time` call that failed: an answer turn after a failure."""
    items = tokyo_answered(message)
    error = "Error: tool 'get_time' raised ValueError: unknown time zone 'Asia/Mumbai'"
    return [*items[:2], {**items[2], "output": error}]


async def test_a_figure_made_up_after_the_call_failed_twice_ends_in_what_failed() -> None:
    # what the 1.5B answered after the clock refused "Asia/Mumbai", in both passes
    engine = ScriptedReplies(
        [chunk("The time in Mumbai is 10:30 PM."), chunk(finish="stop")],
        [chunk("It is 10:30 PM in Mumbai."), chunk(finish="stop")],
    )
    provider = provider_for(engine, call_grounding=True)
    items = clock_refused("Is it evening in Mumbai yet?")
    deltas = [d async for d in provider.stream(GenerationRequest("local", items, tools=[CLOCK]))]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta(
            "I could not find that out: get_time failed (unknown time zone 'Asia/Mumbai')."
        )
    ]
    assert [d for d in deltas if isinstance(d, FinishDelta)] == [FinishDelta("stop")]
    assert deltas[-1] == FinishDelta("stop")
    first, text = engine.streamed()
    assert_text_pass(first, text)
    await provider.aclose()


async def test_after_a_failure_a_text_pass_without_made_up_figures_is_the_answer() -> None:
    engine = ScriptedReplies(
        [chunk("The time in Mumbai is 10:30 PM."), chunk(finish="stop")],
        [chunk("I could not get the time in Mumbai."), chunk(finish="stop")],
    )
    provider = provider_for(engine, call_grounding=True)
    items = clock_refused("Is it evening in Mumbai yet?")
    deltas = [d async for d in provider.stream(GenerationRequest("local", items, tools=[CLOCK]))]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("I could not get the time in Mumbai.")
    ]
    await provider.aclose()


async def test_a_figure_for_what_no_offered_tool_gives_ends_in_saying_so() -> None:
    # the terminal chat's tools (a calculator, a clock, a converter) and a stock price:
    # the 1.5B made one up in its answer and again in the text pass
    engine = ScriptedReplies(
        [chunk("The stock price of Apple is $170.00."), chunk(finish="stop")],
        [chunk("Apple trades at $170."), chunk(finish="stop")],
    )
    provider = provider_for(engine, call_grounding=True)
    message = "What's the stock price of Apple?"
    deltas = [d async for d in provider.stream(request(message, tools=[CLOCK]))]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("I can't look that up: none of my tools gives it, and I won't guess.")
    ]
    assert deltas[-1] == FinishDelta("stop")
    first, text = engine.streamed()
    assert_text_pass(first, text)
    await provider.aclose()


async def test_a_figure_for_a_lookup_no_call_could_make_ends_in_saying_so() -> None:
    # the 1.5B called `stock_price("AAPL")`, its description's example, twice, and
    # then stated a price in the text pass
    stock = {
        "type": "function",
        "name": "stock_price",
        "description": "Latest price of a stock, by its ticker such as AAPL.",
        "parameters": {"type": "object", "properties": {"symbol": {"type": "string"}}},
    }
    copy = json.dumps({"name": "stock_price", "arguments": {"symbol": "AAPL"}})
    made_up = "Shares in the company that owns Instagram trade at $100 per share."
    engine = ScriptedReplies(
        [chunk(copy), chunk(finish="stop")],
        [chunk(copy), chunk(finish="stop")],
        [chunk(made_up), chunk(finish="stop")],
    )
    provider = provider_for(engine, call_grounding=True)
    message = "What are shares in the company that owns Instagram trading at?"
    deltas = [d async for d in provider.stream(request(message, tools=[stock]))]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("I could not look that up just now, and I won't guess.")
    ]
    assert deltas[-1] == FinishDelta("stop")
    assert len(engine.streamed()) == 3
    await provider.aclose()
    # a text pass without a figure of its own is the answer
    engine = ScriptedReplies(
        [chunk(copy), chunk(finish="stop")],
        [chunk(copy), chunk(finish="stop")],
        [chunk("I don't know which ticker that is."), chunk(finish="stop")],
    )
    provider = provider_for(engine, call_grounding=True)
    deltas = [d async for d in provider.stream(request(message, tools=[stock]))]
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("I don't know which ticker that is.")
    ]
    await provider.aclose()


async def test_prose_for_a_follow_up_naming_new_values_is_decoded_again_as_a_call() -> None:
    # "And in Berlin?" after the weather in Paris, answered from the earlier answer
    engine = ScriptedReplies(
        [chunk("It's 18°C and cloudy in Berlin."), chunk(finish="stop")], weather_reply("Berlin")
    )
    provider = provider_for(engine)
    items = [
        *request("What's the weather in Paris?").items,
        function_call("c1", "get_weather", '{"city": "Paris"}'),
        function_output("c1", '{"city": "Paris", "temp_c": 18}'),
        assistant("It's 18°C and cloudy in Paris."),
        *request("And in Berlin?").items,
    ]
    follow_up = GenerationRequest("local", items, tools=[WEATHER_CITY, UNITS])
    deltas = [d async for d in provider.stream(follow_up)]
    assert not [d for d in deltas if isinstance(d, OutputTextDelta)]
    calls = [d for d in deltas if isinstance(d, ToolCallDelta) and d.name]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Berlin"})
    ]
    first, second = engine.streamed()
    assert second["prompt"] == first["prompt"], "the same prompt (cached), no reason added"
    assert first["grammar_lazy"] is True
    assert second["grammar_lazy"] is False, "held to a call from its first token"
    # ... of the tool the earlier turn called alone (asked "Is Google doing better?"
    # after Microsoft's price, the held re-sample called the calculator)
    assert '"\\"convert_units\\""' in first["grammar"]
    assert second["grammar"] == call_grammar([WEATHER_CITY], others=False)
    await provider.aclose()


async def test_an_answer_that_makes_up_the_time_the_message_asks_for_is_decoded_again_as_its_call() -> (
    None
):
    # "What's the weather in Madrid, and what time is it there?": the 1.5B called the
    # weather, then made the time up in its answer
    clock_call = json.dumps({"name": "get_time", "arguments": {"timezone": "Europe/Paris"}})
    engine = ScriptedReplies(
        [chunk("It's 18°C in Paris, and it's 12:34 PM."), chunk(finish="stop")],
        [chunk(clock_call), chunk(finish="stop")],
    )
    provider = provider_for(engine, call_grounding=True)
    items = [
        *request("What's the weather in Paris, and what time is it there?").items,
        function_call("c1", "get_weather", '{"city": "Paris"}'),
        function_output("c1", '{"city": "Paris", "temp_c": 18}'),
    ]
    answer = GenerationRequest("local", items, tools=[WEATHER_CITY, CLOCK])
    deltas = [d async for d in provider.stream(answer)]
    assert not [d for d in deltas if isinstance(d, OutputTextDelta)]
    calls = [d for d in deltas if isinstance(d, ToolCallDelta) and d.name]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_time", {"timezone": "Europe/Paris"})
    ]
    first, second = engine.streamed()
    assert "My request also asks for what get_time gives" in second["prompt"]
    assert "My request also asks" not in first["prompt"]
    assert second["grammar_lazy"] is False, "held to a call from its first token"
    await provider.aclose()


ECHO = "The function get_time returned: 10:40 Asia/Tokyo"


@pytest.mark.parametrize(
    ("last", "answer"),
    [
        # every pass wrote the result message out (the 1.5B, for 100 USD in francs)
        (ECHO, "10:40 Asia/Tokyo."),
        # the last pass answered: that is the answer
        ("It is 10:40 in Tokyo.", "It is 10:40 in Tokyo."),
        # the last pass talked about a function (the 1.5B, after Lima's time came
        # back): the result is the answer, not the talk
        (
            'To greet your uncle, you can call the "get_time" function. It is 10:40 there.',
            "10:40 Asia/Tokyo.",
        ),
    ],
)
async def test_an_answer_that_writes_out_the_result_message_in_every_pass_ends_in_the_result(
    last: str, answer: str
) -> None:
    text_pass_echo = (
        "Now reply to the user in plain text, without calling or mentioning any function."
    )
    engine = ScriptedReplies(
        [chunk(ECHO), chunk(finish="stop")],  # the answer
        [chunk(ECHO), chunk(finish="stop")],  # the re-sample, with the reason
        [chunk(text_pass_echo), chunk(finish="stop")],  # the text pass, its own line
        [chunk(last), chunk(finish="stop")],  # the first prompt alone
    )
    provider = provider_for(engine)
    items = tokyo_answered("Time in Tokyo?")
    deltas = [d async for d in provider.stream(GenerationRequest("local", items, tools=[CLOCK]))]
    assert [d.text for d in deltas if isinstance(d, OutputTextDelta)] == [answer]
    assert deltas[-1] == FinishDelta("stop")
    assert len(engine.streamed()) == 4, "no fifth pass"
    await provider.aclose()


async def test_an_answer_that_talks_about_a_function_is_re_sampled_free_to_answer_or_call() -> None:
    # after Tokyo's time had come back, asked how far ahead of UTC it is
    talk = "To find the time difference, I used the `get_time` function with Asia/Tokyo."
    engine = ScriptedReplies(
        [chunk(talk), chunk(finish="stop")],
        [chunk("Tokyo is 9 hours ahead of UTC."), chunk(finish="stop")],
    )
    provider = provider_for(engine)
    items = tokyo_answered("How many hours ahead of UTC is Tokyo?")
    deltas = [d async for d in provider.stream(GenerationRequest("local", items, tools=[CLOCK]))]
    # a figure of its own, worked out from the result, is an answer too
    assert [d.text for d in deltas if isinstance(d, OutputTextDelta)] == [
        "Tokyo is 9 hours ahead of UTC."
    ]
    _first, second = engine.streamed()
    reason = second["prompt"].rsplit("<|im_start|>user\n", 1)[1]
    assert reason.startswith("You wrote about a function instead of answering.")
    assert second["grammar_lazy"] is True, "not held to a call: the request may be done"
    await provider.aclose()


async def test_a_difference_answered_from_one_of_its_two_places_calls_for_the_other() -> None:
    # after only Tokyo's time had come back, the 1.5B gave the difference from London's
    london = {"name": "get_time", "arguments": {"timezone": "Europe/London"}}
    engine = ScriptedReplies(
        [chunk("London is 9 hours behind Tokyo."), chunk(finish="stop")],
        [chunk(json.dumps(london)), chunk(finish="stop")],
    )
    provider = provider_for(engine)
    items = tokyo_answered("What's the time difference between London and Tokyo?")
    deltas = [d async for d in provider.stream(GenerationRequest("local", items, tools=[CLOCK]))]
    assert not [d for d in deltas if isinstance(d, OutputTextDelta)]
    calls = [d for d in deltas if isinstance(d, ToolCallDelta) and d.name]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_time", {"timezone": "Europe/London"})
    ]
    _first, second = engine.streamed()
    assert "My request also names London" in second["prompt"]
    assert second["grammar"] == call_grammar([CLOCK], others=False), "a clock call alone"
    await provider.aclose()


async def test_a_wrong_call_where_another_was_due_is_re_sampled_for_the_one_due() -> None:
    # after the conversion, asked also "is it raining there right now?", the 1.5B
    # called the clock; that call went to the text pass and the turn ended with the
    # conversion alone
    clock = {"name": "get_time", "arguments": {"timezone": "Europe/London"}}
    engine = ScriptedReplies(
        [chunk(json.dumps(clock)), chunk(finish="stop")], weather_reply("London")
    )
    provider = provider_for(engine, call_grounding=True)
    message = "My London hotel is 145 pounds a night. What's that in dollars, and is it raining there right now?"
    items = [
        *request(message).items,
        function_call(
            "c1",
            "convert_currency",
            '{"amount": 145, "from_currency": "GBP", "to_currency": "USD"}',
        ),
        function_output("c1", "145 GBP = 183.54 USD"),
    ]
    answer = GenerationRequest("local", items, tools=[CURRENCY, WEATHER_CITY, CLOCK])
    deltas = [d async for d in provider.stream(answer)]
    assert not [d for d in deltas if isinstance(d, OutputTextDelta)]
    calls = [d for d in deltas if isinstance(d, ToolCallDelta) and d.name]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "London"})
    ]
    _first, second = engine.streamed()
    assert "My request also asks for what get_weather gives" in second["prompt"]
    assert second["grammar"] == call_grammar([WEATHER_CITY], others=False)
    await provider.aclose()


async def test_a_present_only_lookup_for_another_day_is_answered_by_the_text_pass_saying_so() -> (
    None
):
    # "Will I need an umbrella in Rome on Sunday?": the current weather's call refused,
    # the first prompt alone answered "No umbrella is needed in Rome on Sunday."
    rome = {"name": "get_weather", "arguments": {"city": "Rome"}}
    honest = "I can only check the current weather, not Sunday's."
    engine = ScriptedReplies(
        [chunk(json.dumps(rome)), chunk(finish="stop")],
        [chunk(honest), chunk(finish="stop")],
    )
    provider = provider_for(engine, call_grounding=True)
    message = "Will I need an umbrella in Rome on Sunday?"
    deltas = [d async for d in provider.stream(request(message, tools=[CURRENT_WEATHER]))]
    assert not [d for d in deltas if isinstance(d, ToolCallDelta) and d.name]
    assert [d.text for d in deltas if isinstance(d, OutputTextDelta)] == [honest]
    first, text = engine.streamed()
    assert_text_pass(first, text)
    assert "asks about another day than today, and get_weather only tells" in text["prompt"]
    await provider.aclose()


def currency_reply(amount: float, source: str, target: str) -> list[dict[str, Any]]:
    arguments = {"amount": amount, "from_currency": source, "to_currency": target}
    return [
        chunk(json.dumps({"name": "convert_currency", "arguments": arguments})),
        chunk(finish="stop"),
    ]


def after_pounds_in_euros(message: str) -> GenerationRequest:
    items = [
        *request("Convert 20 GBP to EUR.").items,
        function_call(
            "c1", "convert_currency", '{"amount": 20, "from_currency": "GBP", "to_currency": "EUR"}'
        ),
        function_output("c1", "20 GBP = 23.29 EUR"),
        assistant("20 GBP is 23.29 EUR."),
        *request(message).items,
    ]
    return GenerationRequest("local", items, tools=[CURRENCY])


async def test_a_re_sample_with_a_mendable_mistake_gets_more_tries_each_with_its_reason() -> None:
    # what the 1.5B did for "And to yen?": the euro call again, then 20 taken as euros
    engine = ScriptedReplies(
        currency_reply(20, "GBP", "EUR"),
        currency_reply(20, "EUR", "JPY"),
        currency_reply(20, "GBP", "JPY"),
    )
    provider = provider_for(engine, call_grounding=True)
    deltas = [d async for d in provider.stream(after_pounds_in_euros("And to yen?"))]
    assert not [d for d in deltas if isinstance(d, OutputTextDelta)]
    arguments = "".join(d.arguments for d in deltas if isinstance(d, ToolCallDelta))
    assert json.loads(arguments) == {"amount": 20, "from_currency": "GBP", "to_currency": "JPY"}
    first, second, third = engine.streamed()
    assert "for my earlier message" in second["prompt"]
    assert "20 is in EUR, but 20 was in GBP" in third["prompt"]
    assert "for my earlier message" not in third["prompt"], "the latest mistake's reason only"
    assert first["grammar_lazy"] is True
    assert second["grammar_lazy"] is False, "held to a call"
    assert third["grammar_lazy"] is False, "held to a call"
    await provider.aclose()


@pytest.mark.parametrize(
    "mistakes",
    [
        # the same mistake made again: no further try
        [currency_reply(20, "EUR", "JPY"), currency_reply(20, "EUR", "JPY")],
        # 20 taken as euros, the earlier call again, then a new mistake, but the tries
        # are spent
        [
            currency_reply(20, "EUR", "JPY"),
            currency_reply(20, "GBP", "EUR"),
            currency_reply(20, "GBP", "GBP"),
        ],
    ],
)
async def test_the_tries_to_mend_a_call_end_in_the_text_pass(
    mistakes: list[list[dict[str, Any]]],
) -> None:
    engine = ScriptedReplies(
        currency_reply(20, "GBP", "EUR"),
        *mistakes,
        [chunk("I could not convert that."), chunk(finish="stop")],
    )
    provider = provider_for(engine, call_grounding=True)
    deltas = [d async for d in provider.stream(after_pounds_in_euros("And to yen?"))]
    assert not any(isinstance(d, ToolCallDelta) for d in deltas)
    assert [d for d in deltas if isinstance(d, OutputTextDelta)] == [
        OutputTextDelta("I could not convert that.")
    ]
    bodies = engine.streamed()
    assert len(bodies) == 2 + len(mistakes)
    assert_text_pass(bodies[0], bodies[-1])
    await provider.aclose()


def two_results(message: str) -> GenerationRequest:
    items = [
        *request(message).items,
        function_call("c1", "calculate", '{"expression": "12.5% * 640"}'),
        function_output("c1", "12.5% * 640 = 80"),
        function_call("c2", "get_time", '{"timezone": "Europe/Paris"}'),
        function_output("c2", "11:05 Europe/Paris"),
    ]
    return GenerationRequest("local", items, tools=[CLOCK])


async def test_an_answer_that_leaves_out_a_result_is_asked_again_with_the_result_named() -> None:
    # what the 1.5B answered for "What is 12.5% of 640? Then tell me the time in Paris."
    engine = ScriptedReplies(
        [chunk("The time in Paris "), chunk("is 11:05."), chunk(finish="stop")],
        [chunk("12.5% of 640 is 80, and it is 11:05 in Paris."), chunk(finish="stop")],
    )
    provider = provider_for(engine)
    message = "What is 12.5% of 640? Then tell me the time in Paris."
    deltas = [d async for d in provider.stream(two_results(message))]
    assert [d.text for d in deltas if isinstance(d, OutputTextDelta)] == [
        "12.5% of 640 is 80, and it is 11:05 in Paris."
    ], "the first answer held, never sent"
    _first, second = engine.streamed()
    reason = second["prompt"].rsplit("<|im_start|>user\n", 1)[1]
    assert reason.startswith("Your answer leaves out this result: 12.5% * 640 = 80\n")
    await provider.aclose()


async def test_an_answer_with_one_result_to_report_streams_once_it_shows_it() -> None:
    engine = ScriptedReplies(
        [
            chunk("In Asia"),
            chunk("/Tokyo it is "),
            chunk("10:40"),
            chunk(" now"),
            chunk("."),
            chunk(finish="stop"),
        ],
    )
    provider = provider_for(engine)
    items = tokyo_answered("Time in Tokyo?")
    deltas = [d async for d in provider.stream(GenerationRequest("local", items, tools=[CLOCK]))]
    # held while it shows nothing of the result ("Tokyo" is the request's word,
    # "Asia/Tokyo" the call's)
    assert [d.text for d in deltas if isinstance(d, OutputTextDelta)] == [
        "In Asia/Tokyo it is 10:40",
        " now",
        ".",
    ]
    await provider.aclose()


async def test_an_answer_that_shows_nothing_of_its_one_result_is_asked_again() -> None:
    # asked "Is Tesla doing better?" after Nvidia's price, the 1.5B called for Tesla's
    # and answered "Tesla is doing better.", with no price
    engine = ScriptedReplies(
        [chunk("Tokyo is "), chunk("ahead."), chunk(finish="stop")],
        [chunk("It is 10:40 in Tokyo."), chunk(finish="stop")],
    )
    provider = provider_for(engine)
    items = tokyo_answered("Is it evening in Tokyo yet?")
    deltas = [d async for d in provider.stream(GenerationRequest("local", items, tools=[CLOCK]))]
    assert [d.text for d in deltas if isinstance(d, OutputTextDelta)] == ["It is 10:40 in Tokyo."]
    _first, second = engine.streamed()
    reason = second["prompt"].rsplit("<|im_start|>user\n", 1)[1]
    assert reason.startswith("Your answer leaves out this result: ")
    await provider.aclose()
