"""A real `turnstream serve` process and Debian's Chromium, driven by Playwright."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.livesrv import ServerProcess, spawn_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

MODELS_TOML = """
[[models]]
name = "echo-slow"
provider = "echo"
delay = 0.15

[[models]]
name = "echo-held"
provider = "echo"
hold_after = 3
"""


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401  # imported only to learn whether it is installed
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not Path(CHROMIUM).exists():
        return "Chromium is not installed (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing_browser()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("web")
    config = base / "models.toml"
    config.write_text(MODELS_TOML, encoding="utf-8")
    server = spawn_server(base / "web.db", config)
    yield server
    server.stop()


@pytest.fixture
def page(browser: Any, web_server: ServerProcess) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    page = context.new_page()
    page.set_default_timeout(15_000)
    # `expect` keeps its own ceiling (5 s by default): the same 15 s, for a busy machine
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"http://127.0.0.1:{web_server.port}/")
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
