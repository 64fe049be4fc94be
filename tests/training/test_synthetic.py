"""Tests of the synthetic history generator: determinism, format, consistency, headline rates."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.schema import CLAIM_COLUMNS, TRANSACTION_COLUMNS, column_names
from training.synthetic import (
    CORRECTABLE_RECOVERY_RATE,
    INITIAL_DENIAL_RATE,
    INITIAL_DENIAL_TOLERANCE,
    PAID_IN_FULL_RATES,
    PAID_IN_FULL_TOLERANCE,
    GeneratorConfig,
    generate_history,
    write_history,
)

END_DATE = datetime.date(2026, 9, 30)
END = pd.Timestamp(END_DATE)
MATURED = END - pd.Timedelta(days=365)  # balances billed before this had time to resolve


@pytest.fixture(scope="module")
def history() -> tuple[pd.DataFrame, pd.DataFrame]:
    """One realistic history shared by the read-only tests of this module."""
    return generate_history(GeneratorConfig(n_claims=20_000, seed=7, end_date=END_DATE))


def patient_balances(claims: pd.DataFrame, transactions: pd.DataFrame) -> pd.DataFrame:
    """Per claim with a patient balance: the balance, what the patient paid, whether resolved."""
    transferred = transactions[transactions["type"] == "transfer"].groupby("claim_id")["amount"]
    self_pay = claims[claims["payer_type"] == "self_pay"].set_index("claim_id")["total_charge"]
    balance = pd.concat([transferred.sum(), self_pay]).rename("balance")
    patient_payments = transactions[
        (transactions["type"] == "payment") & (transactions["party"] == "patient")
    ]
    paid = patient_payments.groupby("claim_id")["amount"].sum().reindex(balance.index)
    written_off = transactions["reason"].isin(["bad_debt", "small_balance", "charity"])
    frame = pd.DataFrame({"balance": balance, "paid": paid.fillna(0.0)})
    frame["full"] = frame["paid"] >= frame["balance"] - 0.005
    closed = transactions.loc[written_off.fillna(False), "claim_id"]
    frame["resolved"] = frame["full"] | frame.index.isin(closed)
    return frame.join(claims.set_index("claim_id")[["patient_id", "billed_date", "payer_type"]])


def lowest_running_balances(claims: pd.DataFrame, transactions: pd.DataFrame) -> pd.Series:
    """Per claim, its lowest balance after any event: charge - payments - adjustments + refunds."""
    sign = transactions["type"].map({"payment": -1.0, "adjustment": -1.0, "refund": 1.0})
    events = pd.DataFrame(
        {
            "claim_id": transactions["claim_id"],
            "delta": transactions["amount"].fillna(0.0) * sign.astype("float64").fillna(0.0),
        }
    ).sort_values("claim_id", kind="stable")
    charge = events["claim_id"].map(claims.set_index("claim_id")["total_charge"])
    balance = charge + events.groupby("claim_id")["delta"].cumsum()
    return balance.groupby(events["claim_id"]).min()


def test_generate_history_same_seed_identical_frames():
    first = generate_history(GeneratorConfig(n_claims=5_000, seed=3))
    second = generate_history(GeneratorConfig(n_claims=5_000, seed=3))
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])


def test_generate_history_different_seed_different_frames():
    claims_a, transactions_a = generate_history(GeneratorConfig(n_claims=5_000, seed=3))
    claims_b, transactions_b = generate_history(GeneratorConfig(n_claims=5_000, seed=4))
    assert not claims_a["total_charge"].equals(claims_b["total_charge"])
    assert not claims_a["patient_id"].equals(claims_b["patient_id"])
    assert len(transactions_a) != len(transactions_b)


def test_generate_history_other_progress_chunks_identical_frames():
    one_chunk = generate_history(GeneratorConfig(n_claims=5_500, seed=5, progress_chunks=1))
    many_chunks = generate_history(GeneratorConfig(n_claims=5_500, seed=5, progress_chunks=4))
    pd.testing.assert_frame_equal(one_chunk[0], many_chunks[0])
    pd.testing.assert_frame_equal(one_chunk[1], many_chunks[1])


def test_generate_history_progress_callback_rises_to_n_claims():
    reported: list[int] = []
    generate_history(GeneratorConfig(n_claims=5_500, progress_chunks=4), progress=reported.append)
    assert len(reported) == 4
    assert reported == sorted(reported)
    assert reported[-1] == 5_500


def test_generate_history_columns_schema_order_and_dtypes(history):
    claims, transactions = history
    assert list(claims.columns) == column_names(CLAIM_COLUMNS)
    assert list(transactions.columns) == column_names(TRANSACTION_COLUMNS)
    for frame, columns in ((claims, CLAIM_COLUMNS), (transactions, TRANSACTION_COLUMNS)):
        for column in columns:
            dtype = frame[column.name].dtype
            expected = {"date": "datetime64[ns]", "money": "float64", "int": "Int64"}
            assert str(dtype) == expected.get(column.kind, "string"), column.name
            if column.levels:
                assert set(frame[column.name].dropna()) <= set(column.levels), column.name
            if column.required:
                assert frame[column.name].notna().all(), column.name


def test_generate_history_identifiers_raw_formats(history):
    claims, _ = history
    assert claims["claim_id"].is_unique
    assert claims["claim_id"].iloc[0] == "C0000001"
    assert claims["claim_id"].str.fullmatch(r"C\d{7}").all()
    assert claims["patient_id"].str.fullmatch(r"P\d{6}").all()
    assert (claims.loc[claims["payer_type"] == "self_pay", "payer_id"] == "SELF").all()
    assert (claims.loc[claims["payer_type"] == "medicare", "payer_id"] == "MCARE").all()
    claims_per_patient = len(claims) / claims["patient_id"].nunique()
    assert 2.0 <= claims_per_patient <= 3.0


def test_generate_history_money_never_negative_and_in_cents(history):
    claims, transactions = history
    money = pd.concat(
        [claims["total_charge"], claims["expected_amount"], transactions["amount"]]
    ).dropna()
    assert (money >= 0).all()
    assert np.allclose(money, money.round(2), rtol=0, atol=1e-9)
    assert (
        claims["expected_amount"].dropna()
        <= claims.loc[claims["expected_amount"].notna(), "total_charge"]
    ).all()


def test_generate_history_every_transaction_claim_exists(history):
    claims, transactions = history
    assert transactions["claim_id"].isin(claims["claim_id"]).all()


def test_generate_history_events_between_billing_and_end_date(history):
    claims, transactions = history
    dated = transactions.merge(claims[["claim_id", "service_date", "billed_date"]], on="claim_id")
    assert (dated["date"] <= END).all()
    assert (dated["date"] >= dated["service_date"]).all()
    assert (dated["date"] >= dated["billed_date"]).all()
    assert (claims["billed_date"] >= claims["service_date"]).all()
    assert (claims["billed_date"] <= END).all()
    assert transactions["date"].is_monotonic_increasing


def test_generate_history_claim_events_in_plausible_order(history):
    _, transactions = history
    kind = transactions["type"].where(
        transactions["type"] != "appeal", "appeal_" + transactions["reason"]
    )
    bad_debt = transactions["reason"].isin(["bad_debt", "small_balance"]).fillna(False)
    kind = kind.where(~bad_debt, "patient_write_off")
    patient_payment = (transactions["type"] == "payment") & (transactions["party"] == "patient")
    kind = kind.where(~patient_payment.fillna(False), "patient_payment")
    first = transactions.assign(kind=kind).pivot_table(
        index="claim_id", columns="kind", values="date", aggfunc="min"
    )
    for earlier, later in [
        ("denial", "appeal_filed"),
        ("appeal_filed", "appeal_won"),
        ("appeal_filed", "appeal_lost"),
        ("transfer", "statement"),
        ("statement", "patient_payment"),
        ("statement", "patient_write_off"),
        ("fap_application", "fap_decision"),
        ("dispute_open", "dispute_closed"),
    ]:
        both = first[[earlier, later]].dropna()
        assert len(both) > 0, (earlier, later)
        assert (both[earlier] <= both[later]).all(), (earlier, later)


def test_generate_history_balances_negative_only_for_overpaid_claims(history):
    claims, transactions = history
    lowest = lowest_running_balances(claims, transactions)
    payer_payments = transactions[
        (transactions["type"] == "payment") & (transactions["party"] == "payer")
    ]
    overpaid = payer_payments["claim_id"].value_counts().loc[lambda n: n > 1].index
    negative = lowest < -0.005
    assert negative.any()  # intended overpayments exist
    assert set(negative[negative].index) <= set(overpaid)


def test_generate_history_patient_payments_never_exceed_patient_balance(history):
    claims, transactions = history
    balances = patient_balances(claims, transactions)
    assert (balances["paid"] <= balances["balance"] + 0.005).all()


def test_generate_history_insured_denial_rate_within_tolerance(history):
    claims, transactions = history
    insured = claims[
        (claims["payer_type"] != "self_pay") & (claims["billed_date"] < END - pd.Timedelta(days=60))
    ]
    denied = insured["claim_id"].isin(
        transactions.loc[transactions["type"] == "denial", "claim_id"]
    )
    assert abs(denied.mean() - INITIAL_DENIAL_RATE) <= INITIAL_DENIAL_TOLERANCE


def test_generate_history_smaller_patient_balances_paid_in_full_more_often(history):
    balances = patient_balances(*history)
    matured = balances[balances["resolved"] & (balances["billed_date"] < MATURED)]
    buckets = pd.cut(
        matured["balance"],
        [0, 500, 1_000, 3_000, np.inf],
        labels=["<=500", "500-1000", "1000-3000", ">=3000"],
    )
    rate = matured.groupby(buckets, observed=True)["full"].mean()
    assert rate["<=500"] > rate["500-1000"] > rate["1000-3000"] > rate[">=3000"]
    for bucket in ("<=500", ">=3000"):
        assert abs(rate[bucket] - PAID_IN_FULL_RATES[bucket]) <= PAID_IN_FULL_TOLERANCE, bucket


def test_generate_history_correctable_denials_paid_far_more_often(history):
    _, transactions = history
    denials = transactions[transactions["type"] == "denial"].drop_duplicates("claim_id")
    denials = denials[denials["date"] < MATURED]
    # An allowed claim always has its CO-45 adjustment; the payer pays nothing when the whole
    # allowed amount went to the patient's deductible.
    allowed = transactions.loc[transactions["reason"] == "contractual", "claim_id"]
    paid = denials["claim_id"].isin(allowed)
    correctable = denials["carc_code"].isin(["16", "15", "22", "27"])
    hard = denials["carc_code"].isin(["29", "50"])
    assert abs(paid[correctable].mean() - CORRECTABLE_RECOVERY_RATE) <= 0.06
    assert paid[correctable].mean() > 3 * paid[hard].mean()
    written_off = transactions.loc[transactions["reason"] == "denial_write_off", "claim_id"]
    assert denials.loc[~paid, "claim_id"].isin(written_off).all()
    assert not denials.loc[paid, "claim_id"].isin(written_off).any()


def test_generate_history_past_payers_pay_later_balances_more_often(history):
    balances = patient_balances(*history)
    resolved = balances[balances["resolved"]].sort_values("billed_date", kind="stable")
    resolved = resolved.assign(share=(resolved["paid"] / resolved["balance"]).clip(0, 1))
    by_patient = resolved.groupby("patient_id")
    prior_count = by_patient.cumcount()
    prior_share = (by_patient["share"].cumsum() - resolved["share"]) / prior_count.replace(
        0, np.nan
    )
    later = resolved[
        (prior_count > 0) & (resolved["balance"] <= 500) & (resolved["payer_type"] == "commercial")
    ]
    good_payer = prior_share[later.index] >= 0.5
    assert later.loc[good_payer, "full"].mean() > later.loc[~good_payer, "full"].mean() + 0.1


def test_generate_history_contractual_adjustments_on_insured_paid_claims_only(history):
    claims, transactions = history
    contractual = transactions[transactions["reason"] == "contractual"]
    assert (contractual["carc_group"] == "CO").all() and (contractual["carc_code"] == "45").all()
    payer_type = contractual["claim_id"].map(claims.set_index("claim_id")["payer_type"])
    assert not (payer_type == "self_pay").any()
    paid_by_payer = transactions[
        (transactions["type"] == "payment") & (transactions["party"] == "payer")
    ]["claim_id"].unique()
    assert pd.Index(paid_by_payer).isin(contractual["claim_id"]).mean() > 0.99


def test_generate_history_transfers_carry_patient_responsibility_codes(history):
    _, transactions = history
    transfers = transactions[transactions["type"] == "transfer"]
    assert (transfers["party"] == "patient").all()
    assert (transfers["carc_group"] == "PR").all()
    assert set(transfers["carc_code"]) == {"1", "2", "3"}


def test_write_history_csv_iso_dates_and_cents(tmp_path: Path):
    claims, transactions = generate_history(GeneratorConfig(n_claims=500, seed=2))
    claims_path, transactions_path = write_history(claims, transactions, tmp_path, "csv")
    assert (claims_path.name, transactions_path.name) == ("claims.csv", "transactions.csv")
    raw = pd.read_csv(claims_path, dtype=str, keep_default_na=False)
    assert raw["service_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert raw["total_charge"].str.fullmatch(r"\d+\.\d{2}").all()
    assert raw["place_of_service"].isin(["11", "19", "21", "22", "23"]).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claims.csv", "transactions.csv"]


def test_write_history_parquet_round_trip_identical(tmp_path: Path):
    claims, transactions = generate_history(GeneratorConfig(n_claims=500, seed=2))
    claims_path, transactions_path = write_history(claims, transactions, tmp_path, "parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(claims_path), claims, check_dtype=False)
    pd.testing.assert_frame_equal(
        pd.read_parquet(transactions_path), transactions, check_dtype=False
    )


def test_write_history_unknown_format_raises_without_writing(tmp_path: Path):
    claims, transactions = generate_history(GeneratorConfig(n_claims=100, seed=2))
    with pytest.raises(ValueError, match="csv"):
        write_history(claims, transactions, tmp_path, "xlsx")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_generator_config_bad_payer_mix_raises():
    with pytest.raises(ValueError, match="payer_mix"):
        GeneratorConfig(payer_mix=(("commercial", 0.5), ("self_pay", 0.3)))
