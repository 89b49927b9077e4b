"""Model configuration from TOML and the environment."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.livesrv import LiveServer, running_server
from turnstream.providers.echo import EchoProvider
from turnstream.providers.local import LocalProvider
from turnstream.providers.openai_chat import OpenAIChatProvider
from turnstream.server.config import ConfigError, load_providers
from turnstream.server.settings import Settings

TOML = """
[[models]]
name = "gpt-4o-mini"
provider = "openai_chat"
base_url = "http://127.0.0.1:9/v1"
upstream_model = "gpt-4o-mini-2024"
api_key_env = "TEST_UPSTREAM_KEY"

[[models]]
name = "mistral"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "TEST_UPSTREAM_KEY"

[[models]]
name = "echo-slow"
provider = "echo"
delay = 0.01
"""


def settings_with(tmp_path: Path, text: str) -> Settings:
    config = tmp_path / "models.toml"
    config.write_text(text, encoding="utf-8")
    return Settings(db_path=tmp_path / "x.db", config_path=config, enable_local_model=False)


async def test_a_toml_file_maps_public_names_to_one_upstream_provider(tmp_path: Path) -> None:
    providers = load_providers(settings_with(tmp_path, TOML), environ={"TEST_UPSTREAM_KEY": "sk-1"})
    try:
        bridges = [p for p in providers if isinstance(p, OpenAIChatProvider)]
        assert len(bridges) == 1, (
            "models on one base URL and key share one provider (one connection pool)"
        )
        assert sorted(bridges[0].models()) == ["gpt-4o-mini", "mistral"]
        names = [name for p in providers for name in p.models()]
        assert names[-1] == "echo"
        assert "echo-slow" in names
    finally:
        for provider in providers:
            await provider.aclose()


async def test_the_environment_configures_one_upstream(tmp_path: Path) -> None:
    env = {
        "TURNSTREAM_UPSTREAM_URL": "http://127.0.0.1:9/v1",
        "TURNSTREAM_UPSTREAM_MODELS": "fast=llama-3-8b, big",
    }
    providers = load_providers(
        Settings(db_path=tmp_path / "x.db", enable_local_model=False), environ=env
    )
    try:
        assert sorted(providers[0].models()) == ["big", "fast"]
        assert isinstance(providers[-1], EchoProvider)
    finally:
        for provider in providers:
            await provider.aclose()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[models]]\nprovider = 'openai_chat'\n", "needs a 'name'"),
        ("[[models]]\nname = 'x'\nprovider = 'openai_chat'\n", "needs a 'base_url'"),
        ("[[models]]\nname = 'x'\nprovider = 'magic'\n", "unknown provider"),
        ("models = 3\n", "array of tables"),
        ("[[models]\n", "cannot read"),
        ("[[models]]\nname = 'x'\nbase_url = 'http://h/v1'\nmax_connections = 0\n", "positive"),
        ("[[models]]\nname = 'x'\nbase_url = 'http://h/v1'\nmax_connections = '9'\n", "positive"),
        ("[[models]]\nname = 'x'\nprovider = 'echo'\nhold_after = -1\n", "whole number"),
        ("[[models]]\nname = 'x'\nprovider = 'echo'\nhold_after = true\n", "whole number"),
    ],
)
def test_a_broken_configuration_is_refused_with_a_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_providers(settings_with(tmp_path, text), environ={})


def test_configured_models_are_listed_and_unknown_names_stay_model_not_found(
    tmp_path: Path,
) -> None:
    settings = settings_with(tmp_path, TOML)
    providers = load_providers(settings, environ={})
    with running_server(tmp_path / "x.db", providers=providers) as live:
        listed = {m["id"] for m in httpx.get(f"{live.base_url}/models").json()["data"]}
        assert {"gpt-4o-mini", "mistral", "echo-slow", "echo"} <= listed
        resp = httpx.post(
            f"{live.base_url}/responses", json={"model": "gpt-5-imaginary", "input": "hi"}
        )
        assert resp.status_code == 400
        assert resp.json()["error"]["code"] == "model_not_found"


async def test_the_local_models_warm_up_prefix_is_byte_identical_to_what_the_chat_sends(
    live_server: LiveServer,
) -> None:
    from openai import AsyncOpenAI

    from turnstream import Agent
    from turnstream.providers._local_chat import system_prompt
    from turnstream.runtime.builtin_tools import BUILTIN_TOOLS
    from turnstream.web import chat_warmup

    instructions, tools = chat_warmup()
    async with AsyncOpenAI(base_url=live_server.base_url, api_key="t") as client:
        await Agent(
            client=client, model="scripted", instructions=instructions, tools=BUILTIN_TOOLS
        ).run("hello")
    assert live_server.scripted is not None
    sent = live_server.scripted.requests[0]
    # the prompt cache only helps if the warm-up prompt is the same bytes
    assert system_prompt(sent.instructions, sent.tools) == system_prompt(instructions, tools)


def test_the_local_slots_setting_sizes_the_embedded_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from turnstream.providers import local

    monkeypatch.setattr(local, "local_model_available", lambda *args, **kwargs: True)
    settings = Settings(db_path=tmp_path / "x.db", local_slots=3)
    (provider,) = [p for p in load_providers(settings, environ={}) if isinstance(p, LocalProvider)]
    assert provider.slots == 3
    assert provider.may_queue("local")


def test_the_local_threads_setting_reaches_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from turnstream.providers import local

    factories: list[dict[str, object]] = []

    def factory(**kwargs: object) -> object:
        factories.append(kwargs)
        return lambda path: None

    monkeypatch.setattr(local, "local_model_available", lambda *args, **kwargs: True)
    monkeypatch.setattr(local, "xllamacpp_engine_factory", factory)
    for threads in (None, 1):
        settings = Settings(db_path=tmp_path / "x.db", local_threads=threads)
        load_providers(settings, environ={})
    assert [f["threads"] for f in factories] == [None, 1]
