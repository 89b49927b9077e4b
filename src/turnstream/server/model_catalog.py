"""What Codex CLI reads about a model, served beside OpenAI's `data` in `GET /v1/models`.

Codex asks `GET /models` for a top-level `models` array of model descriptions
(`codex-rs/protocol/src/openai_models.rs`, `ModelInfo`). It asks only for
providers configured with command auth (`auth = {command = ...}`), not `env_key`. Without an entry for the
model in use it warns "Model metadata for ... not found" and falls back to defaults
meant for OpenAI's own models: its long base instructions and an `apply_patch`
freeform tool. The entries here describe the models this server has:

- `shell_type: "shell_command"`: one tool that takes a command string, the simplest
  for small models to call well;
- no `apply_patch_tool_type`: files are written with shell commands, which small
  models do better than Codex's patch grammar (Codex 0.171 knows only `freeform`,
  a custom tool, besides none);
- short `base_instructions`, so a small context window is left for the work;
- no reasoning levels or summaries, no verbosity control.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["BASE_INSTRUCTIONS", "codex_models"]

BASE_INSTRUCTIONS = (
    "You are a coding agent working in the user's workspace through the tools you "
    "are given. Use them to read and change files and to run commands; do not guess "
    "what a command would print. Keep changes small and focused on the task, and end "
    "with a short summary of what you did."
)


def codex_models(names: Sequence[str]) -> list[dict[str, Any]]:
    """Codex's `ModelInfo` for each public model name, in listing order."""
    return [_model_info(name, priority) for priority, name in enumerate(names)]


def _model_info(name: str, priority: int) -> dict[str, Any]:
    return {
        "slug": name,
        "display_name": name,
        "description": f"{name}, served by turnstream",
        "supported_reasoning_levels": [],
        "shell_type": "shell_command",
        "visibility": "list",
        "supported_in_api": True,
        "priority": priority,
        "upgrade": None,
        "base_instructions": BASE_INSTRUCTIONS,
        "supports_reasoning_summaries": False,
        "support_verbosity": False,
        "default_verbosity": None,
        "apply_patch_tool_type": None,
        "truncation_policy": {"mode": "bytes", "limit": 10_000},
        "supports_parallel_tool_calls": True,
        "experimental_supported_tools": [],
        "input_modalities": ["text"],
    }
