"""The chat apps' demo tools: exact answers, and no way out of the sandbox."""

from __future__ import annotations

import datetime as dt

import pytest

from turnstream.runtime.builtin_tools import (
    BUILTIN_TOOLS,
    calculate,
    convert_units,
    current_time,
    time_in,
)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [("2+3*4", "14"), ("(17 * 23) + 2^10", "1415"), ("sqrt(16) / 8", "0.5"), ("-7 // 2", "-4")],
)
def test_calculate_evaluates_arithmetic(expression: str, expected: str) -> None:
    assert calculate.fn(expression).endswith(f"= {expected}")


@pytest.mark.parametrize(
    "expression", ["__import__('os').system('true')", "open('x')", "9**9**9", "x", "", "1 +"]
)
def test_calculate_refuses_anything_but_bounded_arithmetic(expression: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        calculate.fn(expression)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [("12.5% * 640", "80"), ("15% of 80", "12"), ("50%", "0.5"), ("17 % 5", "2"), ("7%(4)", "3")],
)
def test_calculate_reads_a_percent_sign_with_no_operand_after_it_as_a_percentage(
    expression: str, expected: str
) -> None:
    assert calculate.fn(expression) == f"{expression} = {expected}"


def test_convert_units_converts_within_a_dimension_and_refuses_across() -> None:
    assert convert_units.fn(10, "km", "mi") == "10 km = 6.21371 mi"
    assert convert_units.fn(212, "F", "C") == "212 °F = 100 °C"
    assert convert_units.fn(-3, "celsius", "kelvin") == "-3 °C = 270.15 K"
    assert convert_units.fn(72, "F", "C") == "72 °F = 22.22 °C"
    with pytest.raises(ValueError, match="cannot convert length"):
        convert_units.fn(1, "km", "kg")
    with pytest.raises(ValueError, match="unknown unit 'parsec'"):
        convert_units.fn(1, "parsec", "km")


def test_current_time_names_the_zone_and_rejects_unknown_ones() -> None:
    assert "Europe/Paris" in current_time.fn("Europe/Paris")
    with pytest.raises(ValueError, match="unknown time zone"):
        current_time.fn("Mars/Olympus")


def _offset(text: str) -> str:
    return text.rsplit("(", 1)[1].rstrip(")")


@pytest.mark.parametrize(
    ("asked", "zone"),
    [
        ("Tokyo", "Asia/Tokyo"),
        ("new york", "America/New_York"),
        ("asia/tokyo", "Asia/Tokyo"),
        ("São Paulo", "America/Sao_Paulo"),  # IANA's names have no accents
        ("Bogotá", "America/Bogota"),
        ("Zürich", "Europe/Zurich"),
    ],
)
def test_current_time_finds_a_zone_by_its_city(asked: str, zone: str) -> None:
    said = current_time.fn(asked)
    assert f" {zone} (UTC" in said
    assert _offset(said) == _offset(current_time.fn(zone))


@pytest.mark.parametrize(
    ("asked", "zone"),
    [("Asia/Mumbai", "Asia/Kolkata"), ("Mumbai", "Asia/Kolkata"), ("Beijing", "Asia/Shanghai")],
)
def test_current_time_knows_the_zone_of_a_large_city_without_one(asked: str, zone: str) -> None:
    # a model writes Asia/Mumbai, which IANA does not list: refused, it made the time up
    said = current_time.fn(asked)
    assert f"{zone}, the zone of {asked} (UTC" in said
    assert _offset(said) == _offset(current_time.fn(zone))


def test_time_in_reports_a_given_instant_in_the_zone() -> None:
    instant = dt.datetime(2026, 12, 3, 10, 5, tzinfo=dt.UTC)
    assert time_in("Asia/Tokyo", instant) == "Thursday 2026-12-03 19:05:00 Asia/Tokyo (UTC+0900)"
    assert time_in("Mumbai", instant) == (
        "Thursday 2026-12-03 15:35:00 Asia/Kolkata, the zone of Mumbai (UTC+0530)"
    )


def test_the_builtin_tools_have_strict_schemas() -> None:
    assert [t.name for t in BUILTIN_TOOLS] == ["calculate", "current_time", "convert_units"]
    assert all(t.definition()["strict"] for t in BUILTIN_TOOLS)


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        # what the 1.5B wrote in chains, after converting currencies
        ("291.14 EUR - 100 EUR", "191.14 EUR"),
        ("63.29 USD + 20", "83.29 USD"),
        ("$100 * 3", "300 USD"),
        ("5 miles + 1 mile", "6 miles"),
        ("100 EUR / 4", "25 EUR"),
        ("100 EUR / 50 EUR", "2"),  # a ratio has no unit
        ("round(83.456 USD, 2)", "83.46 USD"),
        ("max(3 EUR, 5)", "5 EUR"),
    ],
)
def test_calculate_keeps_the_one_unit_its_amounts_share(expression: str, result: str) -> None:
    assert calculate.fn(expression) == f"{expression} = {result}"


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("50 GBP + 20 USD", r"different units or currencies \(GBP and USD\): convert"),
        ("5 km +\n 3 mi", r"different units or currencies \(km and mi\)"),  # a later line
        ("min(3 EUR, 5 GBP)", r"different units or currencies \(EUR and GBP\)"),
        ("2 km * 3 km", "cannot multiply an amount in km by another"),
        ("10 / 2 km", "cannot divide by or raise to an amount in km"),
        ("(2 km) ** 2", "cannot raise an amount in km to a power"),
        ("sqrt(4 km)", r"sqrt\(\) takes plain numbers"),
        ("round(2.5, 1 km)", r"round\(\) takes plain numbers"),
    ],
)
def test_calculate_refuses_amounts_whose_units_do_not_add_up(expression: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        calculate.fn(expression)


def test_calculate_asks_for_bare_numbers_when_a_temperature_is_among_them() -> None:
    # a hand-made conversion ((25 °C * 9/5) + 32 is in °F, not °C) is the converter's job
    with pytest.raises(ValueError, match="without units or currencies") as raised:
        calculate.fn("(25°C * 9/5) + 32")
    assert str(raised.value).endswith("as in (25 * 9/5) + 32")


@pytest.mark.parametrize(
    ("expression", "result"),
    [("7!", "5040"), ("(3 + 4)!", "5040"), ("factorial(5)", "120"), ("0!", "1"), ("5! / 3!", "20")],
)
def test_calculate_computes_factorials(expression: str, result: str) -> None:
    assert calculate.fn(expression) == f"{expression} = {result}"


@pytest.mark.parametrize(
    ("expression", "error"),
    [("70!", "too large"), ("2.5!", "whole number"), ("factorial(-1)", "whole number")],
)
def test_calculate_refuses_factorials_it_cannot_give(expression: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        calculate.fn(expression)


def test_calculate_rounds_away_binary_float_noise() -> None:
    assert calculate.fn("0.1 + 0.2") == "0.1 + 0.2 = 0.3"
    assert calculate.fn("sqrt(2)") == "sqrt(2) = 1.4142135623731"


def test_calculate_keeps_the_syntax_error_when_units_are_not_the_trouble() -> None:
    with pytest.raises(ValueError, match="not an arithmetic expression"):
        calculate.fn("5 km +")
    with pytest.raises(ValueError, match="not an arithmetic expression"):
        calculate.fn("2pi")  # a constant is not a unit


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("157.48 < 158", "157.48 < 158 is true"),
        ("157.48 cm >= 158 cm", "157.48 cm >= 158 cm is false"),
        ("100 > 50 > 10", "100 > 50 > 10 is true"),
        ("100 > 50 > 70", "100 > 50 > 70 is false"),
        ("2 + 2 == 4", "2 + 2 == 4 is true"),
        ("3 != 3", "3 != 3 is false"),
        ("2 <= 2", "2 <= 2 is true"),
    ],
)
def test_calculate_compares(expression: str, result: str) -> None:
    # "is my 62 inches (157.48 cm) within 158 cm?": the 1.5B wrote the comparison
    assert calculate.fn(expression) == result


def test_calculate_compares_amounts_in_one_unit_only() -> None:
    with pytest.raises(ValueError, match="different units"):
        calculate.fn("5 km < 3 mi")
    with pytest.raises(ValueError, match="unsupported"):
        calculate.fn("1 in [1, 2]")


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("19:05:00 - 07:05:00", "12 hours"),  # two clocks' times, as a model writes them
        ("24:00 - 19:05", "4.9167 hours (4 h 55 min)"),
        ("18:40 - 16:05", "2.5833 hours (2 h 35 min)"),
        ("07:05 - 19:05", "-12 hours"),
        ("07:05 - 19:20", "-12.25 hours (-12 h 15 min)"),
        ("5:30 + 2", "7.5 hours (7 h 30 min)"),
        ("(23:59 - 08:30) * 60", "929"),  # minutes: the caller worked them out
        ("(18:40 - 16:10) / 2", "1.25"),
    ],
)
def test_calculate_takes_times_of_day_as_hours(expression: str, result: str) -> None:
    assert calculate.fn(expression) == f"{expression} = {result}"


def test_calculate_compares_times_of_day() -> None:
    assert calculate.fn("19:05 > 18:00") == "19:05 > 18:00 is true"
    # a ratio, or an hour past 24, is no time of day
    for expression in ("3:2", "25:00 - 1"):
        with pytest.raises(ValueError, match="not an arithmetic expression"):
            calculate.fn(expression)


def test_calculate_reads_an_hour_off_a_clock_with_its_leading_zero() -> None:
    # "21 - 02" for 21:05 and 02:05 was refused as a Python octal literal
    assert calculate.fn("21 - 02") == "21 - 02 = 19"
    assert calculate.fn("10.05 * 2") == "10.05 * 2 = 20.1"
    assert calculate.fn("0.5 + 007") == "0.5 + 007 = 7.5"
