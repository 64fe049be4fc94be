"""835 mapping and posting: each rule of the README's table with its expected rows."""

from __future__ import annotations

import pandas as pd
import pytest

from features.x12 import X12Error, read_x12
from tests.features.x12.x12_text import (
    FIXTURES,
    PROFESSIONAL,
    REMITTANCE,
    claims_body,
    envelope,
    professional_claim,
    remittance,
    write,
)


def _claims_file(tmp_path, claim_ids=("C1",)):
    claims = [professional_claim(claim_id) for claim_id in claim_ids]
    return write(tmp_path / "claims.837", envelope([claims_body(claims)], "837", PROFESSIONAL))


def _remits_file(tmp_path, bodies: list[list[str]], name: str = "era.835", control="000000001"):
    return write(tmp_path / name, envelope(bodies, "835", REMITTANCE, control=control))


def _import(tmp_path, *bodies: list[str], claim_ids=("C1",)):
    return read_x12([_claims_file(tmp_path, claim_ids)], [_remits_file(tmp_path, list(bodies))])


def _rows(result) -> list[tuple]:
    """(claim, date, type, cents, party, group, code, rarc, reason), missing as None."""
    frame = result.transactions
    out = []
    for row in frame.itertuples(index=False):
        values = [None if pd.isna(v) else v for v in row]
        values[1] = values[1].strftime("%Y-%m-%d")
        values[3] = round(values[3] * 100)
        out.append(tuple(values))
    return sorted(out, key=lambda r: (r[1], r[0], r[2], r[6] or "", r[3]))


def _kinds(result) -> list[str]:
    return sorted(w.kind for w in result.warnings)


def test_post_paid_claim_payment_contractual_and_patient_share(tmp_path):
    claim = ["CLP*C1*1*100*60*15*CI*PCN1*11*1", "CAS*CO*45*25", "CAS*PR*2*15"]
    result = _import(tmp_path, remittance(claim, total="60", date="20250310"))
    assert _rows(result) == [
        ("C1", "2025-03-10", "adjustment", 2500, None, "CO", "45", None, "contractual"),
        ("C1", "2025-03-10", "payment", 6000, "payer", None, None, None, None),
        ("C1", "2025-03-10", "transfer", 1500, "patient", "PR", "2", None, None),
    ]
    assert result.warnings == []
    summary = result.summary.posting
    assert (summary.remittance_claims, summary.payments, summary.payment_cents) == (1, 1, 6000)


def test_post_every_cas_triplet_of_a_segment(tmp_path):
    claim = ["CLP*C1*1*100*53*35*CI", "CAS*PR*1*10**2*5**3*20", "CAS*CO*45*10*1*253*2"]
    result = _import(tmp_path, remittance(claim, total="53"))
    assert [(r[2], r[5], r[6], r[3]) for r in _rows(result)] == [
        ("adjustment", "CO", "253", 200),
        ("adjustment", "CO", "45", 1000),
        ("payment", None, None, 5300),
        ("transfer", "PR", "1", 1000),
        ("transfer", "PR", "2", 500),
        ("transfer", "PR", "3", 2000),
    ]
    assert result.summary.posting.adjustment_triplets == {"PR": 3, "CO": 2}


def test_post_claim_and_line_cas_are_summed_per_code(tmp_path):
    claim = [
        "CLP*C1*1*100*45*20*CI",
        "CAS*CO*45*5",
        "SVC*HC:99213*60*25**1",
        "DTM*472*20250301",
        "CAS*CO*45*15",
        "CAS*PR*3*20",
        "SVC*HC:81002*40*25**1",
        "CAS*CO*45*15",
    ]
    result = _import(tmp_path, remittance(claim, total="45"))
    rows = _rows(result)
    assert [(r[2], r[6], r[3]) for r in rows] == [
        ("adjustment", "45", 3500),
        ("payment", None, 4500),
        ("transfer", "3", 2000),
    ]
    assert result.summary.posting.service_lines == 2 and result.warnings == []


def test_post_negative_cas_raises_payment(tmp_path):
    claim = ["CLP*C1*1*100*85**CI", "SVC*HC:99213*100*85**1", "CAS*CO*45*20*1*45*-5"]
    result = _import(tmp_path, remittance(claim, total="85"))
    assert [(r[2], r[3]) for r in _rows(result)] == [("adjustment", 1500), ("payment", 8500)]
    assert result.warnings == []


@pytest.mark.parametrize(
    ("group", "code"), [("CO", "50"), ("CO", "16"), ("OA", "18"), ("PI", "97")]
)
def test_post_denial_carc_is_a_denial_with_its_code_and_remark(tmp_path, group, code):
    claim = ["CLP*C1*1*100*0**CI", f"CAS*{group}*{code}*100", "MOA***N115"]
    result = _import(tmp_path, remittance(claim))
    assert _rows(result) == [("C1", "2025-03-10", "denial", 10000, None, group, code, "N115", None)]


def test_post_oa_and_pi_are_other_adjustments(tmp_path):
    claim = ["CLP*C1*1*100*85**CI", "CAS*OA*94*10", "CAS*PI*104*5"]
    result = _import(tmp_path, remittance(claim, total="85"))
    assert [(r[2], r[5], r[6], r[8]) for r in _rows(result)] == [
        ("adjustment", "PI", "104", "other"),
        ("adjustment", "OA", "94", "other"),
        ("payment", None, None, None),
    ]


def test_post_remark_codes_go_with_the_cas_of_their_level(tmp_path):
    claim = [
        "CLP*C1*1*300*0**MA",
        "CAS*CO*96*100",
        "MIA*0****N130",
        "SVC*HC:97110*200*0**1",
        "CAS*CO*97*200",
        "LQ*HE*M15",
    ]
    result = _import(tmp_path, remittance(claim))
    assert [(r[6], r[7]) for r in _rows(result)] == [("96", "N130"), ("97", "M15")]


def test_post_denied_status_without_denial_carc_is_a_denial(tmp_path):
    first = ["CLP*C1*4*100*0**CI", "CAS*CO*45*100"]
    second = ["CLP*C2*4*80*0**CI"]
    third = ["CLP*C3*23*50*0**CI"]
    result = _import(tmp_path, remittance(first + second + third), claim_ids=("C1", "C2", "C3"))
    assert [(r[0], r[2], r[3], r[5], r[6]) for r in _rows(result)] == [
        ("C1", "denial", 10000, "CO", "45"),
        ("C2", "denial", 8000, "CO", None),
        ("C3", "denial", 5000, "CO", None),
    ]


def test_post_predetermination_is_skipped_with_a_note(tmp_path):
    result = _import(tmp_path, remittance(["CLP*C1*25*100*0**CI", "CAS*CO*45*100"]))
    assert result.transactions.empty
    assert result.summary.posting.notes["predeterminations (CLP02 25, no payment) skipped"] == 1


def test_post_reversal_and_correction_undo_the_original_payment(tmp_path):
    original = ["CLP*C1*1*100*60*15*CI", "CAS*CO*45*25", "CAS*PR*2*15"]
    reversal = ["CLP*C1*22*-100*-60*-15*CI", "CAS*CO*45*-25", "CAS*PR*2*-15"]
    corrected = ["CLP*C1*1*100*70*15*CI", "CAS*CO*45*15", "CAS*PR*2*15"]
    first = remittance(original, total="60", date="20250310", trace="T1")
    second = remittance(reversal + corrected, total="10", date="20250401", trace="T2")
    result = read_x12(
        [_claims_file(tmp_path)],
        [_remits_file(tmp_path, [first], "a.835"), _remits_file(tmp_path, [second], "b.835")],
    )
    assert _rows(result) == [
        ("C1", "2025-03-10", "payment", 6000, "payer", None, None, None, None),
        ("C1", "2025-03-10", "transfer", 1500, "patient", "PR", "2", None, None),
        ("C1", "2025-04-01", "adjustment", 1500, None, "CO", "45", None, "contractual"),
        ("C1", "2025-04-01", "payment", 7000, "payer", None, None, None, None),
        ("C1", "2025-04-01", "refund", 6000, "payer", None, None, None, None),
        ("C1", "2025-04-01", "transfer", 1500, "payer", "PR", "2", None, None),  # the reversal
        ("C1", "2025-04-01", "transfer", 1500, "patient", "PR", "2", None, None),
    ]
    assert _balance_cents(result) == 1500  # 100 - 70 - 15: the patient's share
    assert result.summary.posting.reversals == 1 and result.warnings == []


def _balance_cents(result, claim_id="C1") -> int:
    frame = result.transactions[result.transactions["claim_id"] == claim_id]
    cents = (frame["amount"] * 100).round().astype(int)
    lowers = frame["type"].isin(["payment", "adjustment"])
    raises = frame["type"] == "refund"
    charge = round(result.claims.set_index("claim_id").at[claim_id, "total_charge"] * 100)
    return int(charge - cents[lowers].sum() + cents[raises].sum())


def test_post_negative_adjustment_without_earlier_one_is_a_warning(tmp_path):
    claim = ["CLP*C1*1*100*105**CI", "CAS*OA*94*-5"]
    result = _import(tmp_path, remittance(claim, total="105"))
    assert [(r[2], r[3]) for r in _rows(result)] == [("payment", 10500)]
    assert _kinds(result) == ["negative_adjustment_unmatched"]
    assert result.warnings[0].claim_id == "C1" and "C1" not in str(result.warnings[0])


def test_post_secondary_patient_share_is_not_moved_twice(tmp_path):
    primary = remittance(
        ["CLP*C1*1*100*60*15*CI", "CAS*CO*45*25", "CAS*PR*2*15"], total="60", trace="T1"
    )
    secondary = remittance(
        ["CLP*C1*2*100*10*5*MB", "CAS*OA*23*85", "CAS*PR*2*5"],
        total="10",
        trace="T2",
        date="20250320",
    )
    only_secondary = remittance(
        ["CLP*C2*2*100*10*5*MB", "CAS*OA*23*85", "CAS*PR*2*5"], total="10", trace="T3"
    )
    result = _import(tmp_path, primary, secondary, only_secondary, claim_ids=("C1", "C2"))
    rows = _rows(result)
    assert [(r[0], r[1], r[2], r[3]) for r in rows if r[2] in ("payment", "transfer")] == [
        ("C1", "2025-03-10", "payment", 6000),
        ("C1", "2025-03-10", "transfer", 1500),
        ("C2", "2025-03-10", "payment", 1000),
        ("C2", "2025-03-10", "transfer", 500),  # no earlier remittance moved a share
        ("C1", "2025-03-20", "payment", 1000),  # the primary moved 15 already
    ]
    notes = result.summary.posting.notes
    assert notes["OA-23 prior payer adjudications not posted again"] == 2
    assert notes["secondary PR already moved to the patient, not posted again"] == 1


def test_post_balancing_warnings_keep_the_claim(tmp_path):
    claim = ["CLP*C1*1*100*70**CI", "CAS*CO*45*25", "SVC*HC:99213*100*60**1", "CAS*CO*45*25"]
    result = _import(tmp_path, remittance(claim, total="75"))
    messages = sorted(w.message for w in result.warnings)
    assert messages == [
        "BPR02 $75.00 is not sum(CLP04) $70.00 - sum(PLB) $0.00",
        "claim does not balance: CLP03 - CAS - CLP04 = -$20.00",
        "service line does not balance: SVC02 - line CAS - SVC03 = $15.00",
    ]
    assert {w.kind for w in result.warnings} == {"claim_balance", "line_balance", "payment_balance"}
    assert [(r[2], r[3]) for r in _rows(result)] == [("adjustment", 5000), ("payment", 7000)]


def test_post_plb_overpayment_recovery_is_a_refund_the_rest_a_ledger(tmp_path):
    claims = ["CLP*C1*1*100*80**CI*PAYERCLAIM9", "CAS*CO*45*20"]
    plb = [
        "PLB*1234567893*20251231*WO:C1*30*WO:PAYERCLAIM9*5*L6*-2.5",
        "PLB*1234567893*20251231*WO:NOSUCHCLAIM*7*FB:REF1*-10*WO:C1*-4",
    ]
    body = remittance(claims, total="54.50", provider=plb)
    result = _import(tmp_path, body)
    payer_rows = [(r[2], r[3]) for r in _rows(result) if r[2] in ("refund", "payment")]
    assert sorted(payer_rows) == [
        ("payment", 400),
        ("payment", 8000),
        ("refund", 500),
        ("refund", 3000),
    ]
    ledger = result.provider_ledger
    assert list(ledger["code"]) == ["L6", "WO", "FB"]
    assert list(ledger["amount"]) == [-2.5, 7.0, -10.0]
    assert list(ledger["reference"]) == ["", "NOSUCHCLAIM", "REF1"]
    assert ledger["date"].iloc[0] == pd.Timestamp("2025-03-10")
    assert _kinds(result) == ["plb_unknown_claim"]
    assert result.summary.posting.provider_adjustments == {"WO": 4, "L6": 1, "FB": 1}


def test_post_the_same_remittance_read_twice_adds_nothing(tmp_path):
    body = remittance(["CLP*C1*1*100*80**CI", "CAS*CO*45*20"], total="80")
    once = _import(tmp_path, body)
    era = _remits_file(tmp_path, [body])
    again = tmp_path / "copy.835"
    again.write_text(era.read_text().replace("000000001", "000000002"))
    twice = read_x12([_claims_file(tmp_path)], [era, again])
    assert _rows(twice) == _rows(once)
    assert twice.summary.posting.notes["remittance claims read twice (skipped)"] == 1


def test_post_remittance_without_837_builds_the_claim_from_the_835(tmp_path):
    professional = [
        "CLP*R1*1*100*80*0*MC*PCN1*11*1",
        "NM1*QC*1*DOE*JANE****MI*M77",
        "REF*EA*MRN77",
        "DTM*050*20250302",
        "SVC*HC:99213*100*80**1",
        "DTM*472*20250301",
        "CAS*CO*45*20",
    ]
    inpatient = [
        "CLP*R2*1*9000*6000*0*MA*PCN2*11*1",
        "CAS*CO*45*3000",
        "NM1*QC*1*ROE*RICHARD****MI*M88",
        "MIA*0",
        "DTM*232*20250220",
        "DTM*233*20250224",
    ]
    emergency = [
        "CLP*R3*1*500*400*0*CI*PCN3*13*1",
        "NM1*QC*1*POE*PAT****MI*M99",
        "SVC*HC:99284*500*400*0450*1",
        "DTM*472*20250305",
        "CAS*CO*45*100",
    ]
    body = remittance(professional + inpatient + emergency, total="6480", payer="MEDPAY")
    result = read_x12([], [_remits_file(tmp_path, [body])])
    claims = result.claims.set_index("claim_id")
    built = claims.loc["R1"].to_dict()
    missing = ("expected_amount", "patient_age", "patient_state", "patient_zip3")
    assert all(pd.isna(built.pop(name)) for name in missing)
    assert built == {
        "patient_id": "MRN77",  # REF*EA
        "payer_id": "MEDPAY",  # N1*PR N104
        "payer_type": "medicaid",  # CLP06 MC
        "claim_type": "professional",
        "place_of_service": "11",  # CLP08
        "service_date": pd.Timestamp("2025-03-01"),  # the line's DTM*472
        "billed_date": pd.Timestamp("2025-03-02"),  # DTM*050
        "total_charge": 100.0,  # CLP03
        "source": "835",
    }
    assert claims.loc["R2", ["claim_type", "place_of_service", "patient_id"]].tolist() == [
        "institutional",
        "21",
        "M88",
    ]
    assert claims.loc["R2", "service_date"] == pd.Timestamp("2025-02-24")
    assert claims.loc["R3", ["claim_type", "place_of_service"]].tolist() == ["institutional", "23"]
    assert _kinds(result) == ["claim_from_remittance"] * 3
    assert len(result.transactions) == 6


def test_post_claim_paid_in_two_remittances_keeps_both_payments(tmp_path):
    primary = remittance(["CLP*C1*1*100*60*15*CI", "CAS*CO*45*25", "CAS*PR*2*15"], trace="T1")
    secondary = remittance(["CLP*C1*2*100*15**MB", "CAS*OA*23*85"], trace="T2", date="20250320")
    result = _import(tmp_path, primary, secondary)
    assert [r[3] for r in _rows(result) if r[2] == "payment"] == [6000, 1500]


REMIT_4010 = (FIXTURES / "remit_4010.txt").read_text()

ORIGINAL_4010 = REMIT_4010.replace("CHK4411", "CHK4400").replace("20090301!", "20090201!")


def test_post_4010_reversal_with_cr_group_lowers_the_original(tmp_path):
    original = (
        ORIGINAL_4010.replace(
            "CLP|OLD-9|22|-75|-60||MB|OLDCLAIM1!\nCAS|CR|45|-15!\nCLP|OLD-9|1|75|100||MB|OLDCLAIM2!\n"
            "CAS|CO|45|-25!\n",
            "CLP|OLD-9|1|75|60||MB|OLDCLAIM1!\nCAS|CO|45|15!\n",
        )
        .replace("SE|11|5001", "SE|9|5001")
        .replace("BPR|I|40", "BPR|I|60")
    )
    first, second = tmp_path / "feb.txt", tmp_path / "mar.txt"
    first.write_text(original)
    second.write_text(REMIT_4010)
    result = read_x12([], [first, second])
    rows = _rows(result)
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("2009-02-01", "payment", 6000),
        ("2009-03-01", "payment", 10000),
        ("2009-03-01", "refund", 6000),
    ]  # the CR-45 took the original CO-45 away; the new CO-45 of -25 had nothing left to lower
    assert _kinds(result).count("negative_adjustment_unmatched") == 1


def test_read_remittance_unexpected_segment_is_an_error_with_its_place(tmp_path):
    body = remittance(["CLP*C1*1*100*80**CI"], total="80")
    body.insert(4, "SVC*HC:99213*100*80**1")  # a service line before any claim
    with pytest.raises(X12Error) as caught:
        _import(tmp_path, body)
    message = str(caught.value)
    assert "era.835, interchange 000000001, transaction set 0001" in message
    assert "segment 8 (6 of its transaction set) SVC: segment 'SVC' is not expected here" in message


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        ("CAS*XX*45*20", "CAS01: expected one of CO, PR, OA, PI, CR, found 'XX'"),
        ("CAS*CO*45*2O", "CAS03: expected an amount, found '2O'"),
        ("CAS*CO*45*20.005", "CAS03: expected an amount in whole cents, found '20.005'"),
        ("CAS*CO*45", "CAS03: expected the amount of reason '45'"),
    ],
)
def test_read_remittance_bad_cas_names_the_element(tmp_path, segment, message):
    body = remittance(["CLP*C1*1*100*80**CI", segment], total="80")
    with pytest.raises(X12Error) as caught:
        _import(tmp_path, body)
    assert f"segment 10 (8 of its transaction set) CAS: {message}" in str(caught.value)


def test_read_remittance_unknown_claim_status_is_an_error(tmp_path):
    with pytest.raises(X12Error, match="CLP02: expected a claim status code, found '7'"):
        _import(tmp_path, remittance(["CLP*C1*7*100*80**CI"]))


def test_read_remittance_without_payment_date_is_an_error(tmp_path):
    body = remittance(["CLP*C1*1*100*80**CI"], total="80")
    body[0] = "BPR*I*80*C*ACH"
    with pytest.raises(X12Error, match=r"segment 4 \(2 of its transaction set\) BPR: BPR16"):
        _import(tmp_path, body)


def test_remittance_payer_is_n104_else_ref_2u_else_trn03(tmp_path):
    def payer_of(body: list[str]) -> str:
        era = tmp_path / "payer.835"
        write(era, envelope([body], "835", REMITTANCE))
        return read_x12([], [era]).claims["payer_id"].iloc[0]

    claim = ["CLP*R1*1*100*100**12", "DTM*232*20250301"]
    body = remittance(claim, total="100", payer="PAYERN104")
    assert payer_of(body) == "PAYERN104"
    body[2] = "N1*PR*PAYER ONE"
    body.insert(3, "REF*2U*PAYER2U")
    assert payer_of(body) == "PAYER2U"
    del body[3]
    assert payer_of(body) == "1512345678"  # TRN03, the payer's originating company id
