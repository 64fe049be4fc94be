"""The online path's facts from dicts equal the batch path's facts from frames, value and type."""

# ruff: noqa: F811 (the snapshot_rows fixture is imported from the vectorized path's tests)

from __future__ import annotations

import collections
import math
import types

import numpy as np
import pandas as pd
import pytest

from features.errors import ArscoreError
from serving.policy.facts import OPTIONAL_POLICY_COLUMNS, REQUIRED_COLUMNS, Facts, account_facts
from serving.policy.recommend import recommend, recommend_rows
from serving.policy.row_facts import COLUMNS, facts_of_row
from tests.serving.policy.test_vector import (  # noqa: F401 (fixture)
    DEFAULT,
    POLICIES,
    adversarial_rows,
    snapshot_rows,
)


def _same(left: Facts, right: Facts) -> list[str]:
    """Fields whose values (NaN equal to NaN) or Python types differ."""
    differing = []
    for name, a, b in zip(Facts._fields, left, right, strict=True):
        both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
        if type(a) is not type(b) or not (both_nan or a == b):
            differing.append(f"{name}: {a!r} != {b!r}")
    return differing


def _assert_equal_facts(rows: pd.DataFrame, policy) -> None:
    expected = list(account_facts(rows, policy))
    records = rows.to_dict("records")
    for position, (record, want) in enumerate(zip(records, expected, strict=True)):
        got = facts_of_row(record, policy, position)
        assert not _same(got, want), (position, _same(got, want))


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.version)
@pytest.mark.parametrize("optional", ["with_optional", "without_optional"])
def test_record_facts_equal_account_facts_on_adversarial_rows(policy, optional):
    rows = adversarial_rows(policy, n=3_000)
    if optional == "without_optional":
        rows = rows.drop(columns=list(OPTIONAL_POLICY_COLUMNS))
    _assert_equal_facts(rows, policy)


def test_record_facts_equal_account_facts_on_nullable_dtypes():
    _assert_equal_facts(adversarial_rows(DEFAULT, n=2_000, seed=3).convert_dtypes(), DEFAULT)


def test_record_facts_equal_account_facts_on_snapshot_rows(snapshot_rows):
    _assert_equal_facts(snapshot_rows, DEFAULT)


def test_recommend_records_equal_recommend_with_model_reasons(snapshot_rows):
    rows = snapshot_rows.head(500)
    reasons = [[{"sentence": f"reason {i}"}] for i in range(len(rows))]
    expected = recommend(rows, DEFAULT, reasons)
    assert recommend_rows(rows.to_dict("records"), DEFAULT, reasons) == expected
    assert recommend_rows([], DEFAULT) == []


def test_record_facts_missing_column_and_empty_balance_name_them():
    record = adversarial_rows(DEFAULT, n=1).to_dict("records")[0]
    with pytest.raises(ArscoreError, match="missing column.*n_denials"):
        facts_of_row({k: v for k, v in record.items() if k != "n_denials"}, DEFAULT)
    with pytest.raises(ArscoreError, match="'open_balance' is empty in row.* 3"):
        facts_of_row({**record, "open_balance": None}, DEFAULT, position=2)


def test_records_columns_are_the_required_columns():
    assert len(COLUMNS) == len(set(COLUMNS)) and set(COLUMNS) == set(REQUIRED_COLUMNS)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.version)
@pytest.mark.parametrize("optional", ["with_optional", "without_optional"])
def test_recommend_records_equal_recommend_on_adversarial_rows(policy, optional):
    rows = adversarial_rows(policy, n=3_000, seed=7)
    if optional == "without_optional":
        rows = rows.drop(columns=list(OPTIONAL_POLICY_COLUMNS))
    reasons = [[{"sentence": f"reason {i}", "feature": "n_statements"}] for i in range(len(rows))]
    expected = recommend(rows, policy, reasons)
    assert recommend_rows(rows.to_dict("records"), policy, reasons) == expected


def _as_numpy_and_pandas(value: object) -> object:
    """The same value as the numpy scalar or pandas missing value a frame would hold."""
    if value is None:
        return pd.NA
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, float):
        return np.float64(value) if value == value else pd.NaT
    if isinstance(value, int):
        return np.int64(value)
    return np.str_(value)


def test_record_facts_plain_values_equal_numpy_and_pandas_scalars():
    rows = adversarial_rows(DEFAULT, n=2_000, seed=9)
    rows = rows.assign(n_statements=rows["n_statements"].fillna(0).astype(int))
    for position, record in enumerate(rows.to_dict("records")):
        other = {column: _as_numpy_and_pandas(value) for column, value in record.items()}
        got, want = facts_of_row(other, DEFAULT, position), facts_of_row(record, DEFAULT, position)
        assert not _same(got, want), (position, _same(got, want))


def test_record_facts_mapping_without_column_names_it():
    record = adversarial_rows(DEFAULT, n=1).to_dict("records")[0]
    del record["payment_plans"]
    with pytest.raises(ArscoreError, match="missing column.*payment_plans"):
        facts_of_row(collections.defaultdict(lambda: 0.0, record), DEFAULT)
    with pytest.raises(ArscoreError, match="missing column.*payment_plans"):
        recommend_rows([types.MappingProxyType(record)], DEFAULT)
