"""Can the embedded model say which tool a message needs, asked outright?

An experiment for issue 12: before the first reply, ask the model which one function
(or none) the user's latest message needs, decoded under a grammar that admits only
the offered names and "none", on the same prompt the chat would send plus one
question. If it named the right one more often than the chat's own first decision, a
classification pass could steer that decision. Per case it records the expected
first tool (or "none"), the model's answer and the time it took; per category, how
many it named right, and, for the no-tool categories, how often it said "none".

Usage: python bench/classify_decisions.py [--model 1.5b|0.5b] [--split tune|...]
       [--output PATH]
Writes bench/results/classify-<model>-<split>.json and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import decisions

from turnstream.engine.deltas import OutputTextDelta
from turnstream.providers._call_grammar import text_body
from turnstream.providers._local_chat import (
    ChatPlan,
    ChunkTranslator,
    build_chat_request,
)
from turnstream.providers.base import GenerationRequest
from turnstream.providers.local import LocalProvider, _Body

RESULTS = Path(__file__).resolve().parent / "results"


def question(plan: ChatPlan) -> str:
    """The question after the conversation: the offered functions, and "name one"."""
    lines = [
        f"- {tool['name']}: {' '.join(str(tool.get('description') or '').split())}"
        for tool in plan.tools
    ]
    return (
        "Before you reply: which one function, if any, gives what my last message asks for?\n"
        + "\n".join(lines)
        + "\nReply with the function's name, or none if my message needs no function "
        "(small talk, or something no function gives)."
    )


async def classify(provider: LocalProvider, model: str, plan: ChatPlan) -> str:
    """The model's answer, under a grammar of the offered names and "none"."""
    names = ["none", *sorted(str(tool["name"]) for tool in plan.tools)]
    grammar = "root ::= " + " | ".join(json.dumps(name) for name in names) + "\n"
    messages = [*plan.body["messages"], {"role": "user", "content": question(plan)}]
    body = text_body(
        {**plan.body, "messages": messages, "max_tokens": 12, "temperature": 0.0},
        grammar=grammar,
    )
    engine = await provider._engine_for(model)
    gate = provider._slot_for(model).gate
    reader = ChunkTranslator(dataclasses.replace(plan, sniff_calls=False, grammar=None))
    passed = provider._pass(engine, _Body(body, completion="prompt" in body), gate, reader)
    return "".join([d.text async for d in passed if isinstance(d, OutputTextDelta)]).strip()


async def run(size: str, split: str) -> dict[str, Any]:
    model = decisions.MODEL_NAME[size]
    cases = decisions.load_cases(split, None, None, 0, None)
    sets = decisions.tool_sets()
    provider = LocalProvider({model: size})  # type: ignore[dict-item]
    await provider.ready()
    rows = []
    try:
        for case in cases:
            tools, instructions = sets[case["tools"]]
            history, _ = decisions.history_items(case, {t.name: t for t in tools})
            items = [*history, decisions._message("user", case["prompt"])]
            request = GenerationRequest(
                model=model,
                items=items,
                instructions=instructions,
                tools=[t.definition() for t in tools],
            )
            plan = build_chat_request(request)
            started = time.perf_counter()
            answer = await classify(provider, model, plan)
            expected = case["expect"][0]["name"] if case["expect"] else "none"
            rows.append(
                {
                    "id": case["id"],
                    "category": case["category"],
                    "expected": expected,
                    "answer": answer,
                    "right": answer == expected,
                    "seconds": round(time.perf_counter() - started, 2),
                }
            )
            print(f"{case['id']:<16} {expected:<18} {answer}", flush=True)
    finally:
        await provider.aclose()
    groups: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in rows:
        groups[row["category"]].append(row)
        groups["all"].append(row)
    summary = {
        name: {
            "cases": len(group),
            "right": sum(r["right"] for r in group),
            "said_none_where_none_fits": sum(
                r["answer"] == "none" for r in group if r["expected"] == "none"
            ),
            "none_expected": sum(r["expected"] == "none" for r in group),
            "mean_seconds": round(sum(r["seconds"] for r in group) / len(group), 2),
        }
        for name, group in sorted(groups.items())
    }
    return {"model": size, "split": split, "summary": summary, "cases": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(decisions.MODEL_NAME), default="1.5b")
    parser.add_argument("--split", default="tune")
    parser.add_argument("--output", type=Path)
    options = parser.parse_args()
    result = asyncio.run(run(options.model, options.split))
    output = options.output or RESULTS / f"classify-{options.model}-{options.split}.json"
    output.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{'category':<10} {'right':>9} {'none said/fits':>15} {'s/case':>7}")
    for name, row in result["summary"].items():
        print(
            f"{name:<10} {row['right']:>4}/{row['cases']:<4} "
            f"{row['said_none_where_none_fits']:>7}/{row['none_expected']:<7} "
            f"{row['mean_seconds']:>7}"
        )
    print(f"written to {output}")


if __name__ == "__main__":
    main()
