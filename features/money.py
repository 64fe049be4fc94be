"""Money in one place: dollars to integer cents and back, exactly, and dollars as people read them.

Amounts are summed in integer cents (an amount with a fraction of a cent is rounded half to even
to the cent), stored in integer cents, and turned into ``Decimal`` dollars at the edges. A float
of dollars is rounded on its exact binary value: ``cents(0.125)`` is 12, as ``numpy.rint`` gives.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
import pandas as pd

CENT = Decimal("0.01")


def amount_cents(dollars: pd.Series) -> np.ndarray:
    """Dollar amounts as int64 cents, rounded half to even (``numpy.rint``); missing is 0."""
    return np.rint(dollars.astype("float64").fillna(0.0).to_numpy() * 100).astype(np.int64)


def cents(dollars: float | None) -> int | None:
    """Dollars as whole cents (half to even); None or NaN stays None."""
    if dollars is None or dollars != dollars:
        return None
    return round(float(dollars) * 100)


def cents_or_zero(dollars: float | None) -> int:
    """Dollars as whole cents (half to even); missing or NaN is 0."""
    if dollars is None or dollars != dollars:
        return 0
    return round(dollars * 100)


def rounded_dollars(dollars: float) -> Decimal:
    """Dollars rounded to the cent as an exact Decimal (half to even on the exact binary value)."""
    return Decimal(dollars).quantize(CENT, rounding=ROUND_HALF_EVEN)


def dollars(cents: int) -> Decimal:
    """Integer cents as exact dollars."""
    return (Decimal(int(cents)) * CENT).quantize(CENT)


def cents_to_dollars(cents: int | None) -> Decimal | None:
    """Integer cents as exact dollars; None stays None."""
    return None if cents is None else dollars(cents)


def usd(value: float) -> str:
    """Dollars with thousands separators and cents, the sign in front: $1,234.56, -$12.35."""
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"
