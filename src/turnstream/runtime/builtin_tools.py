"""Safe demo tools for the chat apps: arithmetic, the current time, unit conversion.

None of them touches the shell, the file system or the network, so a model may call
them with any arguments. `calculate` evaluates a parsed arithmetic expression tree,
never `eval`, and bounds exponents so that `9**9**9` cannot hang the process.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import datetime as dt
import functools
import math
import operator
import re
import unicodedata
import zoneinfo
from collections.abc import Callable
from typing import Any

from .tools import Tool, tool

__all__ = ["BUILTIN_TOOLS", "calculate", "convert_units", "current_time", "time_in"]

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "floor": math.floor,
    "ceil": math.ceil,
}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
_MAX_EXPONENT = 1000
_MAX_MAGNITUDE = 10**100
_MAX_FACTORIAL = 69  # 70! is past _MAX_MAGNITUDE


def _factorial(n: Any) -> int:
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"the factorial needs a whole number of 0 or more, not {n}")
    if n > _MAX_FACTORIAL:
        raise ValueError(f"the result is too large (factorials up to {_MAX_FACTORIAL}!)")
    return math.factorial(n)


_FUNCTIONS["factorial"] = _factorial


def _evaluate(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"exponent {right} is too large (at most {_MAX_EXPONENT})")
        result = _BINARY[type(node.op)](left, right)
        if isinstance(result, int) and abs(result) > _MAX_MAGNITUDE:
            raise ValueError("the result is too large")
        return result
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*(_evaluate(arg) for arg in node.args))
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        # "157.48 < 158": is the converted carry-on within the limit (the 1.5B's call,
        # refused before comparisons were taken)
        values = [_evaluate(node.left), *(_evaluate(c) for c in node.comparators)]
        return all(
            _COMPARE[type(op)](a, b) for op, a, b in zip(node.ops, values, values[1:], strict=False)
        )
    raise ValueError(f"unsupported expression element: {ast.unparse(node)!r}")


_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


# "N% of" and a trailing "N%" are percentages (the model writes `12.5% * 640`); a % with
# an operand after it stays the modulo (`17 % 5`).
_PERCENT_OF = re.compile(r"(\d+(?:\.\d+)?)\s*%\s*of\b")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%(?!\s*[\w.(])")


def _percentages(text: str) -> str:
    return _PERCENT.sub(r"(\1/100)", _PERCENT_OF.sub(r"(\1/100)*", text))


# a unit or currency written beside a number: "291.14 EUR", "$100", "5 km", "25°C"
_TAGGED = re.compile(
    r"(?P<symbol>[$€£¥])\s*(?P<after>\d+(?:\.\d+)?)"
    r"|(?<![\w.])(?P<before>\d+(?:\.\d+)?)\s*(?P<degree>°\s*)?(?P<unit>[A-Za-z]+)\b"
)
_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}
_DEGREES = {"c", "f", "k", "celsius", "fahrenheit", "kelvin"}
# the functions whose result is in the unit of their arguments (round(x, 2)'s digits
# are a plain number)
_KEEP_UNIT = {"abs", "round", "floor", "ceil", "min", "max"}


@dataclasses.dataclass(frozen=True)
class _Tagged:
    bare: str  # the expression with the units taken out
    units: dict[int, str]  # a number's UTF-8 offset in `bare` -> the unit written beside it
    degrees: bool  # a temperature among them (°C + 5 is not a sum of amounts)


def _tag_units(text: str) -> _Tagged | None:
    """The units and currencies written beside `text`'s numbers, taken out and kept
    by position; None if it has none. The 1.5B wrote `63.29 USD + 20` in a chain."""
    bare, units, degrees, end = "", {}, False, 0
    for match in _TAGGED.finditer(text):
        word = match["unit"]
        if word is not None and (word in _CONSTANTS or word in _FUNCTIONS):
            continue
        bare += text[end : match.start()]
        units[len(bare.encode())] = _SYMBOLS[match["symbol"]] if word is None else word
        bare += match["after"] or match["before"]
        degrees = degrees or bool(match["degree"]) or (word or "").lower() in _DEGREES
        end = match.end()
    if not units:
        return None
    return _Tagged(bare + text[end:], units, degrees)


def _same_unit(a: str, b: str) -> bool:
    def key(unit: str) -> str:
        unit = unit.lower()
        return unit[:-1] if len(unit) > 3 and unit.endswith("s") else unit

    return key(a) == key(b)


def _mixed(a: str, b: str) -> ValueError:
    return ValueError(
        f"the amounts are in different units or currencies ({a} and {b}): "
        "convert them to one first, then calculate"
    )


def _unit_of(node: ast.AST, units: dict[int, str]) -> str | None:
    """The unit of `node`'s value, or a ValueError saying why it has none: amounts in
    different units are neither added nor compared, a unit is never squared."""
    if isinstance(node, ast.Constant):
        return units.get(node.col_offset)
    if isinstance(node, ast.UnaryOp):
        return _unit_of(node.operand, units)
    if isinstance(node, ast.BinOp):
        return _binary_unit(node, _unit_of(node.left, units), _unit_of(node.right, units))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return _call_unit(node.func.id, [_unit_of(arg, units) for arg in node.args])
    if isinstance(node, ast.Compare):
        # amounts compared in one unit; the answer is yes or no, in no unit
        found = [u for n in [node.left, *node.comparators] if (u := _unit_of(n, units))]
        for unit in found[1:]:
            if not _same_unit(found[0], unit):
                raise _mixed(found[0], unit)
        return None
    return None


def _binary_unit(node: ast.BinOp, a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        if b is not None and isinstance(node.op, ast.Div | ast.FloorDiv | ast.Pow):
            raise ValueError(f"cannot divide by or raise to an amount in {b}")
        if a is not None and isinstance(node.op, ast.Pow):
            raise ValueError(f"cannot raise an amount in {a} to a power")
        return a or b
    if not _same_unit(a, b):
        raise _mixed(a, b)
    if isinstance(node.op, ast.Add | ast.Sub | ast.Mod):
        return a
    if isinstance(node.op, ast.Div | ast.FloorDiv):
        return None  # a ratio
    raise ValueError(f"cannot multiply an amount in {a} by another")


def _call_unit(name: str, found: list[str | None]) -> str | None:
    kept = found if name in ("min", "max") else found[:1]
    if (name not in _KEEP_UNIT and any(found)) or any(found[len(kept) :]):
        raise ValueError(f"{name}() takes plain numbers, not amounts with units")
    named = [unit for unit in kept if unit]
    for unit in named[1:]:
        if not _same_unit(named[0], unit):
            raise _mixed(named[0], unit)
    return named[0] if named else None


# "7!" and "(3 + 4)!" are factorials; "!=" is not arithmetic anyway
_FACTORIAL = re.compile(r"(\d+(?:\.\d+)?|\([^()]*\))\s*!(?!=)")


_LEADING_ZEROS = re.compile(r"(?<![\d.])0+(?=\d)")
# a time of day: "19:05", "07:05:00"
_CLOCK_TIME = re.compile(r"(?<![\d.:])([01]?\d|2[0-4]):([0-5]\d)(?::([0-5]\d))?(?![\d:])")


def _hours(match: re.Match[str]) -> str:
    """A time of day as hours since midnight, for `calculate` ("19:05" -> 19 + 5/60)."""
    hour, minute, second = (int(part or 0) for part in match.groups())
    return f"({hour} + {minute} / 60 + {second} / 3600)"


def _in_hours(result: float) -> str:
    """Hours, and (when not whole) hours and minutes: "12 hours", "11.5833 hours (11 h
    35 min)"."""
    minutes = round(result * 60)
    hours = f"{round(result, 4):g} hours"
    if minutes % 60 == 0:
        return hours
    sign = "-" if minutes < 0 else ""
    whole, rest = divmod(abs(minutes), 60)
    return f"{hours} ({sign}{whole} h {rest} min)"


@tool
def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly and return its result.

    Args:
        expression: The user's calculation written as one expression with the user's
            numbers: + - * / // % ** and parentheses; functions sqrt, abs, round, min,
            max, sin, cos, tan, log, log10, exp, floor, ceil; constants pi, e, tau;
            a number followed by % and no operand is a percentage.
    """
    # Also taken, though the description (which the model reads) does not say so: a
    # factorial (`7!`, `factorial(7)`), amounts that share one unit or currency
    # (`63.29 USD + 20`) and times of day as hours (`19:05 - 07:05`). Saying so changed the 1.5B's calls: with "or currency" in
    # it, "How many dollars is 100 euros?" went to the unit converter (tune split).
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    # times of day: the result is in hours ("19:05:00 - 07:05:00", from two clocks,
    # was refused as no arithmetic expression)
    # (in hours only as sums and differences: "(23:59 - 08:30) * 60" is minutes)
    clock = bool(_CLOCK_TIME.search(text)) and not re.search(r"[*/]", _CLOCK_TIME.sub("", text))
    text = _CLOCK_TIME.sub(_hours, text)
    # one line, so that a number's offset in it is its column in the parsed tree
    text = " ".join(_percentages(_FACTORIAL.sub(r"factorial(\1)", text)).split())
    # an hour read off a clock: "21 - 02" (Python refuses the leading zero)
    text = _LEADING_ZEROS.sub("", text)
    if not text:
        raise ValueError("the expression is empty")
    if len(text) > 500:
        raise ValueError("the expression is too long (at most 500 characters)")
    tagged = _tag_units(text)
    try:
        tree = ast.parse(text if tagged is None else tagged.bare, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not an arithmetic expression: {exc.msg}") from None
    unit = None
    if tagged is not None:
        if tagged.degrees:
            # the numbers alone, for the caller to convert temperatures with a converter
            bare = " ".join(tagged.bare.split())
            raise ValueError(f"write the numbers without units or currencies, as in {bare}")
        unit = _unit_of(tree.body, tagged.units)
    result = _evaluate(tree)
    if isinstance(result, bool):
        return f"{expression.strip()} is {str(result).lower()}"
    if isinstance(result, float) and result.is_integer() and abs(result) < 2**53:
        result = int(result)
    elif isinstance(result, float):
        result = float(f"{result:.15g}")  # 63.29 + 20 is 83.29, not 83.29000000000001
    if clock:
        return f"{expression.strip()} = {_in_hours(float(result))}"
    return f"{expression.strip()} = {result}" + (f" {unit}" if unit else "")


@tool
def current_time(timezone: str = "UTC") -> str:
    """Get the current date and time in a time zone.

    Args:
        timezone: The IANA time zone name (Area/City) of the place the user asks
            about, or UTC when no place is given.
    """
    return time_in(timezone)


def time_in(timezone: str, now: dt.datetime | None = None) -> str:
    """What `current_time` says for `timezone` at the instant `now` (aware; the
    current time if None): a benchmark fixes the clock with it."""
    asked = timezone.strip() or "UTC"
    zone = _zone(asked)
    if zone is None:
        raise ValueError(f"unknown time zone {timezone!r}; use an IANA name like 'Europe/Paris'")
    name = zone.key if _place(zone.key) == _place(asked) else f"{zone.key}, the zone of {asked}"
    local = now.astimezone(zone) if now is not None else dt.datetime.now(zone)
    return local.strftime(f"%A %Y-%m-%d %H:%M:%S {name} (UTC%z)")


_SHARED_ZONES = {
    "Asia/Kolkata": "mumbai bombay delhi new_delhi bangalore bengaluru chennai hyderabad pune",
    "Asia/Shanghai": "beijing guangzhou shenzhen chengdu wuhan",
    "Asia/Tokyo": "osaka kyoto yokohama",
    "Asia/Dubai": "abu_dhabi",
    "America/New_York": "washington washington_dc boston miami atlanta philadelphia",
    "America/Chicago": "houston dallas austin",
    "America/Los_Angeles": "san_francisco seattle san_diego las_vegas",
    "America/Sao_Paulo": "rio_de_janeiro",
    "Europe/Berlin": "munich frankfurt hamburg",
    "Europe/Madrid": "barcelona",
    "Europe/Rome": "milan florence venice",
    "Europe/Zurich": "geneva",
}
"""Large cities that have no zone of their own, by the zone they keep time in: a
model writes `Asia/Mumbai` for Mumbai, which IANA does not list (Mumbai keeps
Asia/Kolkata's time)."""


def _place(name: str) -> str:
    """A zone name's place, folded: "America/New_York", "new york" -> "new_york", and
    without accents: "São Paulo" -> "sao_paulo" (IANA writes America/Sao_Paulo)."""
    place = "_".join(name.rsplit("/", 1)[-1].replace("_", " ").split()).casefold()
    letters = unicodedata.normalize("NFKD", place)
    return "".join(ch for ch in letters if not unicodedata.combining(ch))


@functools.cache
def _zones_by_place() -> dict[str, str]:
    """Every IANA zone by its place (the first of several with one), and the cities
    of `_SHARED_ZONES`."""
    by_place: dict[str, str] = {}
    for key in sorted(zoneinfo.available_timezones()):
        if "/" in key and not key.startswith(("Etc/", "SystemV/", "posix/", "right/")):
            by_place.setdefault(_place(key), key)
    for key, cities in _SHARED_ZONES.items():
        for city in cities.split():
            by_place.setdefault(city, key)
    return by_place


def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The zone `name` means: an IANA name, or a place whose zone is known by its city
    ("Tokyo", "new york", "Asia/Mumbai"); None if none is."""
    with contextlib.suppress(zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(name)
    key = _zones_by_place().get(_place(name))
    return zoneinfo.ZoneInfo(key) if key is not None else None


# Linear units: factor to the dimension's base unit (metre, kilogram, litre, m/s, m², s).
_LINEAR: dict[str, tuple[str, float]] = {}


def _units(dimension: str, table: dict[str, float]) -> None:
    for names, factor in table.items():
        for name in names.split("|"):
            _LINEAR[name] = (dimension, factor)


_units(
    "length",
    {
        "m|meter|meters|metre|metres": 1.0,
        "km|kilometer|kilometers|kilometre|kilometres": 1000.0,
        "cm|centimeter|centimeters|centimetre|centimetres": 0.01,
        "mm|millimeter|millimeters|millimetre|millimetres": 0.001,
        "mi|mile|miles": 1609.344,
        "yd|yard|yards": 0.9144,
        "ft|foot|feet": 0.3048,
        "in|inch|inches": 0.0254,
        "nmi|nautical mile|nautical miles": 1852.0,
    },
)
_units(
    "mass",
    {
        "kg|kilogram|kilograms": 1.0,
        "g|gram|grams": 0.001,
        "mg|milligram|milligrams": 1e-6,
        "t|tonne|tonnes": 1000.0,
        "lb|lbs|pound|pounds": 0.45359237,
        "oz|ounce|ounces": 0.028349523125,
        "st|stone|stones": 6.35029318,
    },
)
_units(
    "volume",
    {
        "l|liter|liters|litre|litres": 1.0,
        "ml|milliliter|milliliters|millilitre|millilitres": 0.001,
        "gal|gallon|gallons": 3.785411784,
        "qt|quart|quarts": 0.946352946,
        "pt|pint|pints": 0.473176473,
        "cup|cups": 0.2365882365,
        "floz|fl oz|fluid ounce|fluid ounces": 0.0295735295625,
    },
)
_units(
    "speed",
    {
        "m/s|mps": 1.0,
        "km/h|kmh|kph": 1000.0 / 3600.0,
        "mph": 1609.344 / 3600.0,
        "knot|knots|kn": 1852.0 / 3600.0,
    },
)
_units(
    "time",
    {
        "s|sec|second|seconds": 1.0,
        "min|minute|minutes": 60.0,
        "h|hr|hour|hours": 3600.0,
        "day|days": 86400.0,
        "week|weeks": 604800.0,
    },
)
_TEMPERATURE = {
    "c": "C",
    "celsius": "C",
    "°c": "C",
    "f": "F",
    "fahrenheit": "F",
    "°f": "F",
    "k": "K",
    "kelvin": "K",
}


def _to_kelvin(value: float, unit: str) -> float:
    return {"C": value + 273.15, "F": (value - 32) * 5 / 9 + 273.15, "K": value}[unit]


def _from_kelvin(value: float, unit: str) -> float:
    return {"C": value - 273.15, "F": (value - 273.15) * 9 / 5 + 32, "K": value}[unit]


@tool
def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a quantity between units of length, mass, volume, speed, time or temperature.

    Args:
        value: The quantity to convert.
        from_unit: The unit of `value`, as the user names it (a symbol or a name).
        to_unit: The unit to convert to.
    """
    source, target = from_unit.strip().lower(), to_unit.strip().lower()
    if source in _TEMPERATURE and target in _TEMPERATURE:
        a, b = _TEMPERATURE[source], _TEMPERATURE[target]
        result = _from_kelvin(_to_kelvin(value, a), b)
        # to the hundredth: -3 °C is 270.15 K, not 270.1
        return f"{value:g} °{a} = {round(result, 2):g} °{b}".replace("°K", "K")
    for unit in (source, target):
        if unit not in _LINEAR and unit not in _TEMPERATURE:
            raise ValueError(
                f"unknown unit {unit!r}; use a unit such as m, km, mi, ft, kg, lb, l, gal, "
                "cups, km/h, mph, h, C, F or K"
            )
    (dim_a, factor_a), (dim_b, factor_b) = (
        _LINEAR.get(source, ("temperature", 0.0)),
        _LINEAR.get(target, ("temperature", 0.0)),
    )
    if dim_a != dim_b:
        raise ValueError(f"cannot convert {dim_a} ({from_unit}) to {dim_b} ({to_unit})")
    result = value * factor_a / factor_b
    return f"{value:g} {from_unit.strip()} = {result:.6g} {to_unit.strip()}"


BUILTIN_TOOLS: tuple[Tool, ...] = (calculate, current_time, convert_units)
"""The demo tools, in the order they are offered to the model."""
