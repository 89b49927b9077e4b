"""LaTeX in a model's answer, shown as readable text in the terminal (pure).

Small models write math in LaTeX (`\\( 12.5\\% \\times 640 \\)`) even when the chat's
instructions ask for plain text, and a terminal cannot typeset it. `readable_math`
turns the formulas between `\\( \\)`, `\\[ \\]` and `$$ $$` into plain text with Unicode
symbols (a multiplication sign for `\\times`), leaving code spans and fenced blocks
alone. The chat page does the same in `web/static/markdown.js` (`mathText`).
"""

from __future__ import annotations

import re

__all__ = ["readable_math"]

_SYMBOLS = {
    "times": "×",
    "div": "÷",
    "cdot": "·",
    "pm": "±",
    "approx": "≈",
    "neq": "≠",
    "ne": "≠",
    "leq": "≤",
    "le": "≤",
    "geq": "≥",
    "ge": "≥",
    "pi": "π",
    "infty": "∞",
    "to": "→",
    "rightarrow": "→",
    "Rightarrow": "⇒",
    "degree": "°",
    "circ": "°",
    "ldots": "…",
    "dots": "…",
    "cdots": "⋯",
    "quad": " ",
    "qquad": "  ",
    "equiv": "≡",
    "sum": "∑",
    "prod": "∏",
    "alpha": "α",
    "beta": "β",
    "theta": "θ",
    "mu": "μ",
    "Delta": "Δ",
    "sim": "~",
}
_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")

_TEXT = re.compile(r"\\(?:text|mathrm|textbf|mathbf|operatorname|textit|mbox)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_SQRT = re.compile(r"\\sqrt\s*\{([^{}]*)\}")
_POWER = re.compile(r"\^\s*\{([^{}]*)\}|\^(\w)")
_INDEX = re.compile(r"_\s*\{([^{}]*)\}")
_FORMULA = re.compile(r"\\\[(.+?)\\\]|\$\$(.+?)\$\$|\\\((.+?)\\\)", re.DOTALL)
# fenced blocks and code spans, which are left as written
_CODE = re.compile(r"(```.*?(?:```|$)|~~~.*?(?:~~~|$)|`[^`\n]+`)", re.DOTALL)


def _grouped(text: str) -> str:
    return text if re.fullmatch(r"[\w.°√]+", text) else f"({text})"


def _power(match: re.Match[str]) -> str:
    power = (match.group(1) if match.group(1) is not None else match.group(2)).strip()
    if re.fullmatch(r"-?\d+", power):
        return power.translate(_SUPERSCRIPT)
    return "°" if power == "\\circ" else "^" + _grouped(power)


def _command(match: re.Match[str]) -> str:
    name = match.group(1)
    return _SYMBOLS.get(name, name) + " "


def math_text(tex: str) -> str:
    """One formula's LaTeX as plain text."""
    out = tex
    for _ in range(8):  # innermost groups first, for nesting
        before = out
        out = _TEXT.sub(r"\1", out)
        out = _FRAC.sub(lambda m: f"{_grouped(m[1].strip())}/{_grouped(m[2].strip())}", out)
        out = _SQRT.sub(lambda m: "√" + _grouped(m[1].strip()), out)
        out = _POWER.sub(_power, out)
        out = _INDEX.sub(r"_\1", out)
        if out == before:
            break
    out = out.replace("\\\\", " ")
    out = re.sub(r"\^\s*\\circ", "°", out)
    out = re.sub(r"\\(?:left|right|big|Big|displaystyle)\b\s*", "", out)
    out = re.sub(r"\\([%$#&_{}])", r"\1", out)
    out = re.sub(r"\\[,;:> ]", " ", out).replace("\\!", "")
    out = re.sub(r"\\([a-zA-Z]+)\s?", _command, out)
    out = re.sub(r"[{}]", "", out)
    out = re.sub(r" +", " ", out)
    out = re.sub(r" ([,.;:)])", r"\1", out).replace("( ", "(")
    return out.strip()


def readable_math(text: str) -> str:
    """`text` with each delimited LaTeX formula outside code turned into plain text."""
    parts = _CODE.split(text)
    for i in range(0, len(parts), 2):  # the even parts are outside code
        parts[i] = _FORMULA.sub(
            lambda m: math_text(next(g for g in m.groups() if g is not None)), parts[i]
        )
    return "".join(parts)
