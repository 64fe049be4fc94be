"""X12 element values: amounts to exact integer cents, CCYYMMDD dates checked once each.

Both raise ``BadValue`` naming the element and what was expected; the segment loops turn it into
an ``X12Error`` with the segment's location. Amounts are never floats on the way in: ``12.5``
is 1250 cents, and an amount with a non-zero fraction of a cent is refused.
"""

from __future__ import annotations

import datetime


class BadValue(ValueError):
    """An element value of the wrong form (the message names the element)."""


def amount_cents(text: str, name: str) -> int:
    """An X12 decimal (R) amount as integer cents: ``-12.5`` is -1250."""
    if text.isdigit() and text.isascii():  # the common forms first: 12 and 12.34
        return int(text) * 100
    if text[-3:-2] == ".":
        digits = text[:-3] + text[-2:]
        if digits.isdigit() and digits.isascii():
            return int(digits)
    whole, _, fraction = text.partition(".")
    if not (whole.removeprefix("-") or fraction) or not text.isascii():
        raise BadValue(f"{name}: expected an amount, found {text!r}")
    places = len(fraction)
    if places == 2:
        digits = whole + fraction
    elif places == 0:
        digits = whole + "00"
    elif places == 1:
        digits = whole + fraction + "0"
    elif fraction[2:].strip("0"):
        raise BadValue(f"{name}: expected an amount in whole cents, found {text!r}")
    else:
        digits = whole + fraction[:2]
    if not digits.isdigit() and not (digits[:1] == "-" and digits[1:].isdigit()):
        raise BadValue(f"{name}: expected an amount, found {text!r}")
    return int(digits)


def optional_cents(segment: list[str], index: int, name: str) -> int | None:
    """The amount at ``segment[index]`` in cents, None when the element is absent or empty."""
    if len(segment) <= index or not segment[index]:
        return None
    return amount_cents(segment[index], name)


class Dates:
    """CCYYMMDD dates, each distinct text checked once (a file holds few distinct dates)."""

    def __init__(self) -> None:
        self._valid: dict[str, datetime.date] = {}

    def date(self, text: str, name: str) -> str:
        """``text`` if it is a valid CCYYMMDD date, else ``BadValue``."""
        if text in self._valid:
            return text
        self.parse(text, name)
        return text

    def parse(self, text: str, name: str) -> datetime.date:
        """The ``datetime.date`` of a CCYYMMDD text."""
        found = self._valid.get(text)
        if found is not None:
            return found
        try:
            if len(text) != 8 or not text.isdigit():
                raise ValueError(text)
            value = datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            raise BadValue(f"{name}: expected a date CCYYMMDD, found {text!r}") from None
        self._valid[text] = value
        return value

    def period_end(self, qualifier: str, text: str, name: str) -> str:
        """The last date of a D8 date or an RD8 range (CCYYMMDD-CCYYMMDD)."""
        if qualifier == "RD8" or "-" in text:
            start, _, end = text.partition("-")
            self.date(start, name)
            return self.date(end, name)
        return self.date(text, name)


def age_at(birth: datetime.date, on: datetime.date) -> int:
    """Whole years from a birth date to a date (the birthday counts on its day)."""
    before_birthday = (on.month, on.day) < (birth.month, birth.day)
    return on.year - birth.year - before_birthday
