"""`@tool`: schemas from hints and docstrings, strict mode, validation, serialization."""

from __future__ import annotations

import asyncio
from typing import Any

import pydantic
import pytest

from turnstream.runtime import Tool, ToolArgumentsError, ToolContext, ToolDefinitionError, tool
from turnstream.runtime.tools import serialize_output


def context() -> ToolContext:
    return ToolContext("call_1", "t", lambda message: None, asyncio.get_running_loop())


def test_schema_comes_from_hints_and_google_docstring() -> None:
    @tool
    def weather(city: str, days: int = 1) -> str:
        """Get the forecast.

        Args:
            city: The city name,
                e.g. Paris.
            days: How many days ahead.
        """
        return city

    assert isinstance(weather, Tool)
    assert weather.description == "Get the forecast."
    props = weather.parameters["properties"]
    assert props["city"] == {"type": "string", "description": "The city name, e.g. Paris."}
    assert weather.strict is True
    assert weather.parameters["required"] == ["city", "days"]
    assert weather.parameters["additionalProperties"] is False
    assert {"type": "null"} in props["days"]["anyOf"]


def test_a_nullable_default_means_use_the_default() -> None:
    @tool
    def f(n: int = 7) -> int:
        """F."""
        return n

    assert f.validate('{"n": null}') == {"n": 7}
    assert f.validate("{}") == {"n": 7}


def test_open_dicts_fall_back_to_non_strict() -> None:
    @tool
    def f(tags: dict[str, str]) -> str:
        """F."""
        return ""

    assert f.strict is False
    with pytest.raises(ToolDefinitionError):
        tool(strict=True)(lambda tags: tags)  # no hints


class Point(pydantic.BaseModel):
    x: float
    y: float


def test_nested_models_are_strict_when_closed() -> None:
    @tool
    def dist(p: Point) -> float:
        """Distance."""
        return (p.x**2 + p.y**2) ** 0.5

    assert dist.strict is True
    assert dist.validate('{"p": {"x": 3, "y": 4}}')["p"] == Point(x=3, y=4)


def test_options_override_name_and_description() -> None:
    @tool(name="sum2", description="Sums.", timeout=1.5, sequential=True)
    async def f(a: int) -> int:
        return a

    assert (f.name, f.description, f.timeout, f.sequential) == ("sum2", "Sums.", 1.5, True)
    assert f.definition()["type"] == "function"


def test_a_parameter_without_a_hint_is_rejected() -> None:
    def f(a):  # type: ignore[no-untyped-def]  # the missing hint is what is tested
        return a

    with pytest.raises(ToolDefinitionError, match="needs a type hint"):
        tool(f)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"a": "x"}', "a: Input should be a valid integer"),
        ('{"a": 1, "zz": 2}', "zz: Extra inputs are not permitted"),
        ("[1]", "must be a JSON object"),
        ("{oops", "not valid JSON"),
        ("{}", "a: Field required"),
    ],
)
def test_invalid_arguments_are_described_for_the_model(raw: str, expected: str) -> None:
    @tool
    def f(a: int) -> int:
        """F."""
        return a

    with pytest.raises(ToolArgumentsError, match=expected):
        f.validate(raw)


async def test_invoke_serializes_non_strings_as_json() -> None:
    @tool
    async def f(a: int) -> dict[str, Any]:
        """F."""
        return {"sum": a + 1}

    assert await f.invoke('{"a": 1}', context()) == '{"sum":2}'


def test_serialize_output_keeps_strings_as_they_are() -> None:
    assert serialize_output("plain") == "plain"
    assert serialize_output([1, 2]) == "[1,2]"
