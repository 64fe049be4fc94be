"""The code lists: the README's mapping tables say what the code does."""

from __future__ import annotations

import re

import pytest

from features.x12 import codes
from tests.test_cli import REPO


def _readme_row(starts: str) -> str:
    rows = [
        line for line in (REPO / "README.md").read_text().splitlines() if line.startswith(starts)
    ]
    assert len(rows) == 1, starts
    return rows[0]


def _expand(listed: str) -> set[str]:
    """'4-9, 11, B7' -> {'4', ..., '9', '11', 'B7'}."""
    found = set()
    for item in (part.strip() for part in listed.split(",")):
        low, _, high = item.partition("-")
        if high and low.isdigit():
            found |= {str(n) for n in range(int(low), int(high) + 1)}
        else:
            found.add(item)
    return found


def test_readme_lists_exactly_the_denial_carcs():
    row = _readme_row("| CO, OA or PI with a denial CARC")
    listed = re.search(r"denial CARC \(([^)]*)\)", row).group(1)
    assert _expand(listed) == codes.DENIAL_CARCS


def test_readme_sbr09_row_matches_the_payer_types():
    row = _readme_row("| SBR09:")
    for code, payer_type in codes.CLAIM_FILING_PAYER_TYPE.items():
        assert code in row and f"`{payer_type}`" in row, code


@pytest.mark.parametrize(
    ("bill", "emergency", "off_campus", "place"),
    [
        ("0111", False, False, "21"),
        ("131", False, False, "22"),
        ("131", True, True, "23"),
        ("131", False, True, "19"),
        ("141", True, False, "22"),  # only hospital outpatient bills are refined by the lines
        ("851", False, False, "22"),
        ("991", False, False, None),
    ],
)
def test_institutional_place_of_service_from_the_type_of_bill(bill, emergency, off_campus, place):
    assert codes.institutional_place_of_service(bill, emergency, off_campus) == place


@pytest.mark.parametrize(("revenue", "emergency"), [("0450", True), ("459", True), ("0510", False)])
def test_emergency_revenue_codes_are_045x(revenue, emergency):
    assert codes.is_emergency_revenue_code(revenue) is emergency
