"""FHIR ExplanationOfBenefit: our own EOB fixtures and the interchange rows they give."""

from __future__ import annotations

import copy
import gzip
import json

import pandas as pd
import pytest

from features.fhir import FhirError, read_fhir

CARC = "https://x12.org/codes/claim-adjustment-reason-codes"
RARC = "https://x12.org/codes/remittance-advice-remark-codes"


def _coded(code: str, system: str = "") -> dict:
    return (
        {"coding": [{"system": system, "code": code}]} if system else {"coding": [{"code": code}]}
    )


def _money(category: str, value: str) -> dict:
    return {"category": _coded(category), "amount": {"value": float(value), "currency": "USD"}}


PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "identifier": [{"value": "MRN-1"}],
    "birthDate": "1990-06-01",
    "address": [{"state": "CO", "postalCode": "80203"}],
}
COVERAGE = {
    "resourceType": "Coverage",
    "id": "cov1",
    "type": _coded("512", "https://nahdo.org/sopt"),
}
MEDICARE = {
    "resourceType": "Coverage",
    "id": "cov2",
    "type": _coded("121", "https://nahdo.org/sopt"),
}
INSURER = {"resourceType": "Organization", "id": "org1", "identifier": [{"value": "PAYER-A"}]}


def _eob(eob_id: str, claim_id: str, **fields) -> dict:
    eob = {
        "resourceType": "ExplanationOfBenefit",
        "id": eob_id,
        "status": "active",
        "type": _coded("professional", "http://terminology.hl7.org/CodeSystem/claim-type"),
        "identifier": [{"type": _coded("uc"), "value": claim_id}],
        "patient": {"reference": "Patient/p1"},
        "insurer": {"reference": "Organization/org1"},
        "created": "2025-03-20",
        "billablePeriod": {"start": "2025-03-01", "end": "2025-03-01"},
        "insurance": [{"focal": True, "coverage": {"reference": "Coverage/cov1"}}],
        "supportingInfo": [
            {"sequence": 1, "category": _coded("clmrecvddate"), "timingDate": "2025-03-04"}
        ],
    }
    eob.update(fields)
    return eob


PAID = _eob(
    "eob1",
    "CLAIM-1",
    item=[
        {
            "sequence": 1,
            "locationCodeableConcept": _coded("11", "https://www.cms.gov/place-of-service"),
            "net": {"value": 200.0},
            "adjudication": [
                _money("eligible", "120"),
                _money("deductible", "30"),
                _money("copay", "20"),
                _money("memberliability", "55"),
                _money("benefit", "65"),
                {"category": _coded("adjustmentreason"), "reason": _coded("45", CARC)},
            ],
        }
    ],
    total=[_money("submitted", "200"), _money("benefit", "65")],
    payment={"date": "2025-03-21", "amount": {"value": 65.0}},
)
DENIED = _eob(
    "eob2",
    "CLAIM-2",
    type=_coded("institutional"),
    insurance=[{"focal": True, "coverage": {"reference": "Coverage/cov2"}}],
    supportingInfo=[{"sequence": 1, "category": _coded("typeofbill"), "code": _coded("0131")}],
    item=[
        {
            "sequence": 1,
            "revenue": _coded("0450"),
            "adjudication": [
                {**_money("submitted", "1500"), "reason": _coded("CO-50", CARC)},
                {"category": _coded("denialreason"), "reason": _coded("N115", RARC)},
            ],
        }
    ],
    total=[_money("submitted", "1500")],
    payment={"date": "2025-03-25", "amount": {"value": 0}},
)


def _bundle(*resources: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in resources],
    }


def _read(tmp_path, *resources: dict, name: str = "eob.json"):
    path = tmp_path / name
    path.write_text(json.dumps(_bundle(PATIENT, COVERAGE, MEDICARE, INSURER, *resources)))
    return read_fhir([path])


def _rows(result) -> list[tuple]:
    out = []
    for row in result.transactions.itertuples(index=False):
        values = [None if pd.isna(v) else v for v in row]
        values[1], values[3] = values[1].strftime("%Y-%m-%d"), round(values[3] * 100)
        out.append(tuple(values))
    return out


def test_read_fhir_paid_eob_maps_claim_and_adjudication(tmp_path):
    result = _read(tmp_path, PAID)
    claim = result.claims.set_index("claim_id").loc["CLAIM-1"].to_dict()
    assert pd.isna(claim.pop("expected_amount"))
    assert claim == {
        "patient_id": "MRN-1",
        "payer_id": "PAYER-A",
        "payer_type": "commercial",  # SOPT 512
        "claim_type": "professional",
        "place_of_service": "11",
        "service_date": pd.Timestamp("2025-03-01"),
        "billed_date": pd.Timestamp("2025-03-04"),  # supportingInfo clmrecvddate
        "total_charge": 200.0,
        "patient_age": 34,
        "patient_state": "CO",
        "patient_zip3": "802",
    }
    assert sorted(_rows(result), key=lambda r: (r[2], r[6] or "")) == [
        ("CLAIM-1", "2025-03-21", "adjustment", 8000, None, "CO", "45", None, "contractual"),
        ("CLAIM-1", "2025-03-21", "payment", 6500, "payer", None, None, None, None),
        ("CLAIM-1", "2025-03-21", "transfer", 500, "patient", "PR", None, None, None),  # the rest
        ("CLAIM-1", "2025-03-21", "transfer", 3000, "patient", "PR", "1", None, None),
        ("CLAIM-1", "2025-03-21", "transfer", 2000, "patient", "PR", "3", None, None),
    ]
    assert result.warnings == []
    assert (result.summary.payments, result.summary.payment_cents) == (1, 6500)


def test_read_fhir_denied_institutional_eob_is_a_denial_with_its_codes(tmp_path):
    result = _read(tmp_path, DENIED)
    claim = result.claims.set_index("claim_id").loc["CLAIM-2"]
    assert (claim["claim_type"], claim["place_of_service"], claim["payer_type"]) == (
        "institutional",
        "23",  # type of bill 013x with an emergency revenue code
        "medicare",  # SOPT 121
    )
    assert _rows(result) == [
        ("CLAIM-2", "2025-03-25", "denial", 150000, None, "CO", "50", "N115", None)
    ]
    assert result.summary.denials == 1


def test_read_fhir_latest_eob_of_a_claim_stands_and_related_prior_is_replaced(tmp_path):
    older = copy.deepcopy(PAID) | {"id": "eob1-old", "created": "2025-03-10"}
    older["payment"] = {"date": "2025-03-11", "amount": {"value": 10.0}}
    replaced = copy.deepcopy(PAID) | {"id": "eob5"}
    replaced["identifier"] = [{"type": _coded("uc"), "value": "CLAIM-5"}]
    replacing = copy.deepcopy(PAID) | {"id": "eob6"}
    replacing["identifier"] = [{"type": _coded("uc"), "value": "CLAIM-6"}]
    replacing["related"] = [
        {"claim": {"identifier": {"value": "CLAIM-5"}}, "relationship": _coded("prior")}
    ]
    cancelled = copy.deepcopy(DENIED) | {"id": "eob7", "status": "cancelled"}
    cancelled["identifier"] = [{"value": "CLAIM-7"}]
    result = _read(tmp_path, older, PAID, replaced, replacing, cancelled)
    assert sorted(result.claims["claim_id"]) == ["CLAIM-1", "CLAIM-6"]
    payments = result.transactions[result.transactions["type"] == "payment"]
    assert list(payments.sort_values("claim_id")["amount"]) == [65.0, 65.0]
    assert (result.summary.superseded, result.summary.skipped) == (2, 1)


def test_read_fhir_ndjson_and_gzip_read_the_same_as_a_bundle(tmp_path):
    resources = [PATIENT, COVERAGE, MEDICARE, INSURER, PAID, DENIED]
    bundle = _read(tmp_path, PAID, DENIED)
    ndjson = tmp_path / "export.ndjson.gz"
    ndjson.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in resources).encode()))
    single = tmp_path / "single"
    single.mkdir()
    for number, resource in enumerate(resources):
        (single / f"{number}.json").write_text(json.dumps(resource))
    for other in (read_fhir([ndjson]), read_fhir([single])):
        pd.testing.assert_frame_equal(other.claims, bundle.claims)
        pd.testing.assert_frame_equal(other.transactions, bundle.transactions)


def test_read_fhir_unbalanced_adjudication_is_a_warning(tmp_path):
    unbalanced = copy.deepcopy(PAID)
    unbalanced["item"][0]["adjudication"][0] = _money("eligible", "130")
    result = _read(tmp_path, unbalanced)
    assert [(w.kind, w.claim_id) for w in result.warnings] == [("eob_balance", "CLAIM-1")]
    assert "CLAIM-1" not in str(result.warnings[0])


def test_read_fhir_bad_ndjson_line_names_file_and_line(tmp_path):
    path = tmp_path / "broken.ndjson"
    path.write_text(json.dumps(PATIENT) + "\n{not json\n")
    with pytest.raises(FhirError, match=r"broken.ndjson, resource 2: not JSON"):
        read_fhir([path])


def test_read_fhir_eob_without_charge_names_the_resource(tmp_path):
    no_charge = copy.deepcopy(PAID)
    del no_charge["total"], no_charge["item"][0]["net"]
    with pytest.raises(
        FhirError, match=r"eob.json, resource 5 \(ExplanationOfBenefit/eob1\): no charge"
    ):
        _read(tmp_path, no_charge)


def test_read_fhir_fraction_of_a_cent_is_an_error(tmp_path):
    odd = copy.deepcopy(PAID)
    odd["payment"]["amount"]["value"] = 65.001
    with pytest.raises(FhirError, match="payment.amount: expected an amount in whole cents"):
        _read(tmp_path, odd)
