"""Element values: amounts to exact cents, dates checked, ages."""

from __future__ import annotations

import datetime

import pytest

from features.x12.values import BadValue, Dates, age_at, amount_cents


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("12", 1200),
        ("12.5", 1250),
        ("12.50", 1250),
        ("1234.56", 123456),
        ("-12.5", -1250),
        ("-3.00", -300),
        (".5", 50),
        ("-.05", -5),
        ("12.", 1200),
        ("12.500", 1250),
        ("0", 0),
    ],
)
def test_amount_cents_reads_x12_decimals_exactly(text, cents):
    assert amount_cents(text, "CLP04") == cents


@pytest.mark.parametrize("text", ["", "-", ".", "1_0", "+5", " 5", "1e5", "--1", "1.2.3", "١٢"])
def test_amount_cents_refuses_what_is_no_x12_decimal(text):
    with pytest.raises(BadValue, match="CLP04: expected an amount"):
        amount_cents(text, "CLP04")


def test_amount_cents_refuses_a_fraction_of_a_cent():
    with pytest.raises(BadValue, match="whole cents, found '1.005'"):
        amount_cents("1.005", "CAS03")


def test_dates_check_each_text_and_read_periods():
    dates = Dates()
    assert dates.date("20240229", "DTM02") == "20240229"
    assert dates.period_end("RD8", "20250226-20250301", "DTP03") == "20250301"
    for bad in ("20250229", "2025-03-01", "2025031", "abcdefgh"):
        with pytest.raises(BadValue, match="DTM02: expected a date CCYYMMDD"):
            dates.date(bad, "DTM02")


def test_age_at_counts_the_birthday_on_its_day():
    birth = datetime.date(1980, 3, 15)
    assert age_at(birth, datetime.date(2025, 3, 14)) == 44
    assert age_at(birth, datetime.date(2025, 3, 15)) == 45
