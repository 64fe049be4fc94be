"""Money helpers: cents and dollars, exactly, and dollars as a person reads them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from features.money import cents, cents_or_zero, cents_to_dollars, dollars, usd


@pytest.mark.parametrize(
    ("value", "shown"), [(1234.5, "$1,234.50"), (0.0, "$0.00"), (-12.345, "-$12.35")]
)
def test_usd_formats_dollars_and_cents(value, shown):
    assert usd(value) == shown


@pytest.mark.parametrize(("value", "expected"), [(12.345, 1234), (0.125, 12), (None, None)])
def test_cents_rounds_half_to_even_on_the_binary_value(value, expected):
    assert cents(value) == expected


def test_cents_of_nan_is_none_and_cents_or_zero_is_zero():
    assert cents(float("nan")) is None
    assert cents_or_zero(float("nan")) == 0
    assert cents_or_zero(None) == 0


def test_dollars_of_cents_are_exact_decimals():
    assert dollars(10) == Decimal("0.10")
    assert cents_to_dollars(-1) == Decimal("-0.01")
    assert cents_to_dollars(None) is None
