"""The chat page in a real browser against a real `turnstream serve` (echo models)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.livesrv import ServerProcess

# one xdist worker runs the page tests: they share one browser and one server process
pytestmark = pytest.mark.xdist_group("browser")

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _choose_model(page: Any, name: str) -> None:
    page.get_by_label("Model").select_option(name)


def _send(page: Any, text: str) -> None:
    # the page ignores Enter while a turn runs: the last one may still be closing its
    # stream after its text has shown (on a loaded machine, for a while)
    expect(page.get_by_role("button", name="Send", exact=True)).to_be_enabled()
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")


def test_a_message_streams_the_answer_and_a_tool_card_that_fills_in(
    page: Any, tmp_path: Path
) -> None:
    _choose_model(page, "echo")
    _send(page, 'calculate {"expression": "6*7"}')
    user = page.locator(".msg.user .bubble").last
    expect(user).to_have_text('calculate {"expression": "6*7"}')
    card = page.locator(".tool").last
    expect(card.locator(".name")).to_have_text("calculate")
    expect(card.locator(".args")).to_contain_text('"expression": "6*7"')
    expect(card.locator(".result")).to_have_text("6*7 = 42")
    expect(card.locator(".state")).to_contain_text("done in")
    expect(page.locator(".msg.assistant .bubble").last).to_have_text("Tool results: 6*7 = 42")
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    # the new conversation is in the URL and in the sidebar, marked current
    assert "#conv_" in page.url
    current = page.locator('#chat-list a[aria-current="page"]')
    expect(current).to_have_text('calculate {"expression": "6*7"}')
    target = DOCS if os.environ.get("TURNSTREAM_UPDATE_SCREENSHOT") else tmp_path
    page.screenshot(path=str(target / "screenshot-web-chat.png"))


# Records every state of the last answer bubble, with whether Stop was offered then, so
# the test sees the partial states however late it looks.
RECORD_ANSWER_STATES = """() => {
  window.answerStates = [];
  new MutationObserver(() => {
    const bubbles = document.querySelectorAll(".msg.assistant .bubble");
    if (bubbles.length === 0) return;
    const text = bubbles[bubbles.length - 1].innerText;
    window.answerStates.push([text, !document.getElementById("stop").hidden]);
  }).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def test_text_streams_in_pieces_before_the_turn_ends(page: Any) -> None:
    _choose_model(page, "echo-slow")
    page.evaluate(RECORD_ANSWER_STATES)
    _send(page, 'calculate {"expression": "2**10"}')
    bubble = page.locator(".msg.assistant .bubble").last
    expect(bubble).to_have_text("Tool results: 2**10 = 1024")
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    states = page.evaluate("window.answerStates")
    # while the answer still streamed, it was partial and the Stop button was offered
    assert any(
        text.startswith("Tool results:") and "1024" not in text and stop_offered
        for text, stop_offered in states
    ), states


def test_stop_cancels_the_turn_and_the_conversation_stays_usable(page: Any) -> None:
    # echo-held answers by quoting the tool's error message, and its text stops after
    # three words until the turn is cancelled: Stop lands mid-answer however slow the
    # machine is
    _choose_model(page, "echo-held")
    _send(page, "convert_units please")
    bubble = page.locator(".msg.assistant .bubble").last
    expect(bubble).to_have_text(re.compile(r"^Tool results: Error:\s*$"))
    page.get_by_role("button", name="Stop").click()
    expect(page.locator(".note").last).to_have_text("Stopped.")
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    expect(bubble).to_have_text(re.compile(r"^Tool results: Error:\s*$"))  # what came stays
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    _choose_model(page, "echo")
    _send(page, 'calculate {"expression": "2+2"}')
    expect(page.locator(".msg.assistant .bubble").last).to_have_text("Tool results: 2+2 = 4")


def test_reloading_the_page_shows_the_conversation_so_far(page: Any) -> None:
    _choose_model(page, "echo")
    _send(page, 'calculate {"expression": "3*3"}')
    expect(page.locator(".msg.assistant .bubble").last).to_have_text("Tool results: 3*3 = 9")
    _send(page, "current_time please")
    expect(page.locator(".tool .name").last).to_have_text("current_time")
    expect(page.locator(".msg.assistant .bubble").last).to_contain_text("UTC")
    url = page.url
    page.reload()
    assert page.url == url
    users = page.locator(".msg.user .bubble")
    expect(users).to_have_text(['calculate {"expression": "3*3"}', "current_time please"])
    expect(page.locator(".tool .name")).to_have_text(["calculate", "current_time"])
    expect(page.locator(".tool .result").first).to_have_text("3*3 = 9")
    expect(page.locator(".msg.assistant .bubble").first).to_have_text("Tool results: 3*3 = 9")
    # the sidebar lists it; New chat empties the page; the link brings it back
    link = page.locator('#chat-list a[aria-current="page"]')
    expect(link).to_have_text('calculate {"expression": "3*3"}')
    page.get_by_role("button", name="+ New chat").click()
    expect(page.locator(".msg")).to_have_count(0)
    page.locator("#chat-list a", has_text='"3*3"').first.click()
    expect(page.locator(".msg.user .bubble")).to_have_count(2)


def test_the_page_works_at_phone_width_with_the_keyboard(
    browser: Any, web_server: ServerProcess
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 780}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(f"http://127.0.0.1:{web_server.port}/")
        # the sidebar is folded away behind a labelled button; the composer fits
        expect(page.locator("#sidebar")).to_be_hidden()
        toggle = page.get_by_role("button", name="Conversations")
        expect(toggle).to_be_visible()
        box = page.get_by_label("Message", exact=True)
        expect(box).to_be_focused()
        size = box.bounding_box()
        assert size is not None
        assert size["x"] + size["width"] <= 390
        page.get_by_label("Model").select_option("echo")
        box.focus()
        page.keyboard.type('calculate {"expression": "5-3"}')
        page.keyboard.press("Enter")
        expect(page.locator(".msg.assistant .bubble").last).to_have_text("Tool results: 5-3 = 2")
        toggle.click()
        expect(page.locator("#sidebar")).to_be_visible()
        expect(page.get_by_role("button", name="+ New chat")).to_be_focused()
        page.keyboard.press("Escape")
        expect(page.locator("#sidebar")).to_be_hidden()
    finally:
        context.close()


def test_markdown_is_rendered_and_html_in_model_output_is_not(page: Any) -> None:
    html = page.evaluate(
        """renderMarkdown('# Title\\n**bold** and `<b>code</b>`\\n\\n- one\\n- two\\n\\n'
        + '<img src=x onerror=alert(1)> [ok](https://example.com) [bad](javascript:alert(1))\\n'
        + '```\\n<script>x()</script>\\n```')"""
    )
    assert "<strong>bold</strong>" in html
    assert "<code>&lt;b&gt;code&lt;/b&gt;</code>" in html
    assert "<ul><li>one</li><li>two</li></ul>" in html
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert '<a href="https://example.com" rel="noopener noreferrer" target="_blank">ok</a>' in html
    assert 'href="javascript' not in html
    assert "<pre><code>&lt;script&gt;x()&lt;/script&gt;</code></pre>" in html


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # what the 1.5B wrote in the web chat, told not to (issue 12)
        (
            r"\[ 12.5\% \times 640 = \frac{12.5}{100} \times 640 = 80 \]",
            "12.5% \u00d7 640 = 12.5/100 \u00d7 640 = 80",
        ),
        (r"the area is \( \pi r^2 \)", "\u03c0 r\u00b2"),
        ("\\[\n\\frac{2 + 3}{4} \\approx \\sqrt{1.5625}\n\\]", "(2 + 3)/4 \u2248 \u221a1.5625"),
        (r"$$ \left( \frac{1}{2} \right)^{-1} = 2 $$", "(1/2)\u207b\u00b9 = 2"),
        (r"\(77^{\circ}\text{F}\)", "77\u00b0F"),
    ],
)
def test_latex_in_model_output_is_shown_as_readable_math(page: Any, text: str, shown: str) -> None:
    html = page.evaluate("text => renderMarkdown(text)", text)
    assert f'<span class="math">{shown}</span>' in html
    assert "\\" not in html, "no LaTeX command is left raw"


def test_latex_is_left_alone_in_code_and_cannot_inject_markup(page: Any) -> None:
    html = page.evaluate(
        "text => renderMarkdown(text)",
        "`\\( x \\)` and $5 or $10\n\\( <img src=x onerror=alert(1)> \\)\n```\n\\[ y \\]\n```",
    )
    assert "<code>\\( x \\)</code>" in html
    assert "$5 or $10" in html
    assert '<span class="math">&lt;img src=x onerror=alert(1)&gt;</span>' in html
    assert "<img" not in html
    assert "<pre><code>\\[ y \\]</code></pre>" in html


def test_a_progress_bar_shows_while_the_model_loads_then_the_page_says_ready(
    browser: Any, web_server: ServerProcess
) -> None:
    # The echo models load at once, so /readyz answers as a server still loading the
    # chosen model would (the shape `tests/server/test_health.py` pins), until told not to.
    loaded = {"now": False}

    def readyz(route: Any) -> None:
        state = "ready" if loaded["now"] else "loading"
        body: dict[str, Any] = {
            "status": "ready" if loaded["now"] else "not_ready",
            "checks": {"database": "ok", "models": {"echo": state, "echo-slow": state}},
        }
        if not loaded["now"]:
            body["load_progress"] = {"echo": 0.42, "echo-slow": 0.42}
        route.fulfill(
            status=200 if loaded["now"] else 503,
            content_type="application/json",
            body=json.dumps(body),
        )

    context = browser.new_context(viewport={"width": 1100, "height": 720})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.route("**/readyz", readyz)
        page.goto(f"http://127.0.0.1:{web_server.port}/")
        bar = page.get_by_role("progressbar", name=re.compile("Loading"))
        expect(bar).to_be_visible()
        expect(bar).to_have_attribute("value", "42")
        expect(page.locator("#load-label")).to_contain_text("42%")
        loaded["now"] = True
        expect(bar).to_be_hidden()
        expect(page.get_by_role("status")).to_contain_text("is ready")
    finally:
        context.close()


def test_a_model_that_loads_on_first_use_shows_its_bar_once_a_message_is_sent(
    browser: Any, web_server: ServerProcess
) -> None:
    # The terminal chat's server preloads only the chat's model; the page's other model
    # reads `on_first_use` until a message to it begins its load.
    phase = {"now": "on_first_use"}

    def readyz(route: Any) -> None:
        state = phase["now"]
        body: dict[str, Any] = {
            "status": "not_ready" if state == "loading" else "ready",
            "checks": {"database": "ok", "models": {"echo": state, "echo-slow": "ready"}},
        }
        if state == "loading":
            body["load_progress"] = {"echo": 0.3}
        route.fulfill(
            status=503 if state == "loading" else 200,
            content_type="application/json",
            body=json.dumps(body),
        )

    # the turn is held back until the model has loaded, as the server holds a turn whose
    # model is still loading: the page then shows the load and the answer in that order
    held: list[Any] = []

    def turn(route: Any) -> None:
        if phase["now"] == "on_first_use":
            phase["now"] = "loading"
        held.append(route)

    context = browser.new_context(viewport={"width": 1100, "height": 720})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.route("**/readyz", readyz)
        page.route("**/chat/api/turn", turn)
        page.goto(f"http://127.0.0.1:{web_server.port}/")
        _choose_model(page, "echo")
        bar = page.get_by_role("progressbar", name=re.compile("Loading"))
        expect(page.get_by_label("Message", exact=True)).to_be_editable()
        expect(bar).to_be_hidden()
        _send(page, 'calculate {"expression": "1+1"}')
        expect(bar).to_be_visible()
        expect(bar).to_have_attribute("value", "30")
        phase["now"] = "ready"
        expect(bar).to_be_hidden()
        expect(page.get_by_role("status")).to_contain_text("The model echo is ready.")
        assert len(held) == 1
        held[0].continue_()
        expect(page.locator(".msg.assistant .bubble").last).to_have_text("Tool results: 1+1 = 2")
        expect(page.get_by_role("status")).to_have_text("")  # the turn's end clears it
    finally:
        context.close()
