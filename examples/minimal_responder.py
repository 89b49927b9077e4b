"""The chatbot from the original `conversation_locked` report, on the turnstream runtime.

It streams a response, prints text deltas, runs the `add` tool when the model calls it
and feeds the result back, until the model answers. Unlike the hand-written loop in the
report it cannot trip `conversation_locked`: each stream is read to its end before the
tool outputs go out, and a locked conversation is retried with backoff anyway.

    python examples/minimal_responder.py "What is 2 + 3?"
    python examples/minimal_responder.py --base-url https://api.openai.com/v1 --model gpt-4.1

The base URL comes from --base-url, else OPENAI_BASE_URL, else a local turnstream server
(http://127.0.0.1:8000/v1, model `echo`).
"""

from __future__ import annotations

import argparse
import asyncio
import os

from openai import AsyncOpenAI

from turnstream.runtime import (
    Agent,
    RunCompleted,
    TextDelta,
    ToolCallReady,
    ToolResult,
    tool,
)


@tool
def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: The first addend.
        b: The second addend.
    """
    return a + b


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("message", nargs="?", default="What is 2 + 3?")
    parser.add_argument(
        "--base-url", default=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    )
    parser.add_argument("--model", default="echo")
    parser.add_argument("--conversation", help="a conv_... id (server-held history)")
    args = parser.parse_args()

    async with AsyncOpenAI(
        base_url=args.base_url, api_key=os.environ.get("OPENAI_API_KEY", "local")
    ) as client:
        agent = Agent(
            client=client,
            model=args.model,
            instructions="You are a helpful assistant. You may call functions if useful.",
            tools=[add],
        )
        conversation = args.conversation
        if conversation is None:
            conversation = (await client.conversations.create()).id
        async for event in agent.stream(args.message, conversation=conversation):
            if isinstance(event, TextDelta):
                print(event.text, end="", flush=True)
            elif isinstance(event, ToolCallReady):
                print(f"\n[calling {event.name}({event.raw_arguments})]", flush=True)
            elif isinstance(event, ToolResult):
                print(f"[{event.name} -> {event.output}]", flush=True)
            elif isinstance(event, RunCompleted):
                print(f"\n[done in {event.result.turns} turn(s), conversation {conversation}]")


if __name__ == "__main__":
    asyncio.run(main())
