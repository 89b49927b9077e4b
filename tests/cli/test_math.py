"""LaTeX in a model's answer is shown as readable math in the terminal chat."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from turnstream.cli._display import TurnDisplay
from turnstream.cli._math import readable_math
from turnstream.runtime import TextDelta, TurnStarted


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # what the 1.5B wrote in the web chat, told not to (issue 12)
        (
            r"Of 640: \[ 12.5\% \times 640 = \frac{12.5}{100} \times 640 = 80 \]",
            "Of 640: 12.5% × 640 = 12.5/100 × 640 = 80",
        ),
        (r"the area is \( \pi r^2 \) and \(\sqrt{16} = 4\).", "the area is π r² and √16 = 4."),
        ("\\[\n\\frac{2 + 3}{4} \\approx 1.25\n\\]\nDone.", "(2 + 3)/4 ≈ 1.25\nDone."),
        (r"$$ \left( \frac{1}{2} \right)^{-1} = 2 $$", "(1/2)⁻¹ = 2"),
        (r"\(77^{\circ}\text{F}\) is \(25^\circ\)C", "77°F is 25°C"),
        (r"\(\frac{\sqrt{2}}{2}\)", "√2/2"),
    ],
)
def test_formulas_become_plain_text(text: str, shown: str) -> None:
    assert readable_math(text) == shown


def test_code_prices_and_plain_text_are_left_alone() -> None:
    text = "Run `\\( x \\)` for $5 or $10.\n```\n\\[ y \\]\n```\nA [link](x) \\o/"
    assert readable_math(text) == text


def test_the_terminal_chat_shows_an_answer_s_latex_as_math() -> None:
    display = TurnDisplay(Console(file=io.StringIO()))
    display.feed(TurnStarted(1, "resp_1"))
    display.feed(TextDelta("It is \\(2 \\times 3 = 6\\).", "msg_1"))
    console = Console(file=io.StringIO(), width=80, color_system=None)
    with console.capture() as capture:
        console.print(display._render())
    assert "It is 2 × 3 = 6." in capture.get()
