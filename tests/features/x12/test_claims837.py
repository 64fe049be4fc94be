"""837 mapping: each row of the README's table, corrections, and errors that say where."""

from __future__ import annotations

import pandas as pd
import pytest

from features.x12 import X12Error, read_x12
from tests.features.x12.x12_text import (
    FIXTURES,
    INSTITUTIONAL,
    PROFESSIONAL,
    claims_body,
    envelope,
    professional_claim,
    remittance,
    write,
)


def _read(tmp_path, claims: list[list[str]], version: str = PROFESSIONAL, **body) -> object:
    path = write(tmp_path / "claims.837", envelope([claims_body(claims, **body)], "837", version))
    return read_x12([path], [])


def _row(result, claim_id: str = "C1") -> dict:
    return result.claims.set_index("claim_id").loc[claim_id].to_dict()


def test_read_x12_professional_claim_maps_every_column(tmp_path):
    claim = professional_claim(charge="250.5", extra=["HCP*03*150.25"], birth="19800315")
    result = _read(tmp_path, [claim])
    assert _row(result) == {
        "patient_id": "MRN1",  # REF*EA
        "payer_id": "PAYER01",  # NM1*PR NM109
        "payer_type": "commercial",  # SBR09 CI
        "claim_type": "professional",  # CLM05-2 B
        "place_of_service": "11",  # CLM05-1
        "service_date": pd.Timestamp("2025-03-01"),  # DTP*472
        "billed_date": pd.Timestamp("2025-03-05"),  # BHT04
        "total_charge": 250.5,  # CLM02
        "expected_amount": 150.25,  # HCP02
        "patient_age": 44,  # DMG02 1980-03-15 at 2025-03-01
        "patient_state": "TX",  # N402
        "patient_zip3": "752",  # N403
        "source": "837",
    }
    assert result.transactions.empty and result.warnings == []


@pytest.mark.parametrize(
    ("filing", "payer_type"),
    [
        ("MA", "medicare"),
        ("MB", "medicare"),
        ("16", "medicare_advantage"),
        ("MC", "medicaid"),
        ("CI", "commercial"),
        ("BL", "commercial"),
        ("HM", "commercial"),
        ("12", "commercial"),
        ("CH", "tricare_va"),
        ("VA", "tricare_va"),
        ("WC", "workers_comp"),
        ("09", "self_pay"),
        ("AM", "other"),
        ("ZZ", "other"),
    ],
)
def test_read_x12_sbr09_claim_filing_indicator_gives_payer_type(tmp_path, filing, payer_type):
    result = _read(tmp_path, [professional_claim(filing=filing)])
    assert _row(result)["payer_type"] == payer_type


def _institutional(bill: str, revenue: str, procedure: str, claim_id: str = "C1") -> list[str]:
    claim = professional_claim(claim_id=claim_id)
    at = claim.index(next(s for s in claim if s.startswith("CLM")))
    claim[at] = f"CLM*{claim_id}*5000***{bill[:2]}:A:{bill[2]}**A*Y*Y"
    claim.insert(at + 1, "DTP*434*RD8*20250226-20250301")
    claim[-2] = f"SV2*{revenue}*{procedure}*5000*UN*1"
    claim[-1] = "DTP*472*D8*20250227"
    return claim


@pytest.mark.parametrize(
    ("bill", "revenue", "procedure", "place"),
    [
        ("111", "0120", "", "21"),  # hospital inpatient
        ("131", "0510", "HC:99213", "22"),  # hospital outpatient, on campus
        ("131", "0450", "HC:99284", "23"),  # an emergency room revenue code
        ("131", "0510", "HC:99213:PO", "19"),  # an off-campus department (PO modifier)
        ("831", "0490", "HC:29881", "24"),  # ambulatory surgery center
    ],
)
def test_read_x12_type_of_bill_gives_place_of_service(tmp_path, bill, revenue, procedure, place):
    result = _read(tmp_path, [_institutional(bill, revenue, procedure)], INSTITUTIONAL)
    row = _row(result)
    assert row["claim_type"] == "institutional" and row["place_of_service"] == place
    assert row["service_date"] == pd.Timestamp("2025-03-01")  # the DTP*434 through date


def test_read_x12_unknown_type_of_bill_is_place_99_with_a_warning(tmp_path):
    result = _read(tmp_path, [_institutional("991", "0510", "HC:99213")], INSTITUTIONAL)
    assert _row(result)["place_of_service"] == "99"
    assert [w.kind for w in result.warnings] == ["unknown_type_of_bill"]
    assert "segment 20 (18 of its transaction set) CLM" in str(result.warnings[0].location)


def test_read_x12_patient_identifier_falls_back_to_member_id(tmp_path):
    result = _read(tmp_path, [professional_claim(record=None)])
    assert _row(result)["patient_id"] == "MEMBER1"


def test_read_x12_dependent_patient_has_own_demographics_and_id(tmp_path):
    claim = professional_claim(record=None, birth="19700101")
    at = claim.index(next(s for s in claim if s.startswith("CLM")))
    claim[0] = "HL*{hl}*1*22*1"
    claim[at:at] = [
        "HL*9*{hl}*23*0",
        "PAT*19",
        "NM1*QC*1*DOE*JUNIOR",
        "N3*2 OAK ST",
        "N4*DENVER*CO*80203",
        "DMG*D8*20150610*M",
    ]
    row = _row(_read(tmp_path, [claim]))
    assert row["patient_id"] == "MEMBER1-20150610"  # subscriber id and the dependent's birth
    assert (row["patient_age"], row["patient_state"], row["patient_zip3"]) == (9, "CO", "802")


def test_read_x12_claim_without_any_patient_id_is_its_own_patient(tmp_path):
    claim = [s for s in professional_claim(record=None) if not s.startswith("NM1*IL")]
    claim.insert(2, "NM1*IL*1*DOE*JANE")
    result = _read(tmp_path, [claim])
    assert _row(result)["patient_id"] == "claim:C1"
    assert [(w.kind, w.claim_id) for w in result.warnings] == [("no_patient_id", "C1")]
    assert "C1" not in w_text(result)


def w_text(result) -> str:
    return " ".join(str(w) for w in result.warnings)


def test_read_x12_no_bht04_uses_the_group_date(tmp_path):
    body = claims_body([professional_claim()])
    body[0] = "BHT*0019*00*BATCH1**1200*CH"
    path = write(tmp_path / "c.837", envelope([body], "837", PROFESSIONAL, date="20250307"))
    assert _row(read_x12([path], []))["billed_date"] == pd.Timestamp("2025-03-07")


def test_read_x12_contract_amount_stands_in_for_expected(tmp_path):
    result = _read(tmp_path, [professional_claim(extra=["CN1*02*320.10"])])
    assert _row(result)["expected_amount"] == 320.10


def test_read_x12_missing_demographics_stay_missing(tmp_path):
    claim = professional_claim(birth=None, state="", postal="")
    row = _row(_read(tmp_path, [claim]))
    assert pd.isna(row["patient_age"]) and pd.isna(row["patient_state"])
    assert pd.isna(row["patient_zip3"]) and pd.isna(row["expected_amount"])


def test_read_x12_replacement_keeps_first_billed_date_and_latest_fields(tmp_path):
    first = write(
        tmp_path / "a.837",
        envelope([claims_body([professional_claim(charge="100")])], "837", PROFESSIONAL),
    )
    replaced = professional_claim(charge="120", frequency="7")
    second = write(
        tmp_path / "b.837",
        envelope([claims_body([replaced], billed="20250320")], "837", PROFESSIONAL),
    )
    row = _row(read_x12([second, first], []))
    assert row["total_charge"] == 120.0
    assert row["billed_date"] == pd.Timestamp("2025-03-05")


def test_read_x12_void_leaves_the_claim_and_its_remittances_out(tmp_path):
    billed = [professional_claim("C1"), professional_claim("C2")]
    first = write(tmp_path / "a.837", envelope([claims_body(billed)], "837", PROFESSIONAL))
    void = professional_claim("C2", frequency="8")
    second = write(
        tmp_path / "b.837", envelope([claims_body([void], billed="20250309")], "837", PROFESSIONAL)
    )
    remit = remittance(["CLP*C2*1*100*80**CI", "CAS*CO*45*20"], total="80")
    era = write(tmp_path / "r.835", envelope([remit], "835", "005010X221A1"))
    result = read_x12([first, second], [era])
    assert list(result.claims["claim_id"]) == ["C1"]
    assert result.summary.voided_claims == 1 and result.transactions.empty
    assert (
        result.summary.posting.notes["remittance claims of voided claims (CLM05-3 8) not posted"]
        == 1
    )


def test_read_x12_segment_where_the_grammar_has_none_is_an_error(tmp_path):
    claim = professional_claim()
    claim.insert(0, "CLP*C1*1*100*100")  # a remittance segment in a claim file
    with pytest.raises(X12Error) as caught:
        _read(tmp_path, [claim])
    message = str(caught.value)
    assert "claims.837, interchange 000000001, transaction set 0001" in message
    assert "segment 13 (11 of its transaction set) CLP" in message
    assert "not expected here" in message


def test_read_x12_claim_before_any_subscriber_is_an_error(tmp_path):
    body = claims_body([])
    body += ["CLM*C1*100***11:B:1*Y*A*Y*Y"]
    path = write(tmp_path / "c.837", envelope([body], "837", PROFESSIONAL))
    with pytest.raises(X12Error, match=r"segment 13 \(11 of its transaction set\) CLM"):
        read_x12([path], [])


def test_read_x12_bad_charge_names_the_element(tmp_path):
    with pytest.raises(X12Error, match=r"\) CLM: CLM02: expected an amount, found '12,50'"):
        _read(tmp_path, [professional_claim(charge="12,50")])


def test_read_x12_bad_date_names_the_element(tmp_path):
    with pytest.raises(
        X12Error, match=r"\) DTP: DTP\*472: expected a date CCYYMMDD, found '20250230'"
    ):
        _read(tmp_path, [professional_claim(service="20250230")])


def test_read_x12_claim_without_service_date_is_an_error(tmp_path):
    claim = [s for s in professional_claim() if not s.startswith("DTP")]
    with pytest.raises(X12Error, match="CLM: the claim has no service date"):
        _read(tmp_path, [claim])


def test_read_x12_remittance_given_as_claims_is_an_error(tmp_path):
    remit = remittance(["CLP*C1*1*100*100**CI"], total="100")
    era = write(tmp_path / "r.835", envelope([remit], "835", "005010X221A1"))
    with pytest.raises(X12Error, match="an 835 in a file given with --claims"):
        read_x12([era], [])


CLAIM_4010 = (FIXTURES / "claim_4010.txt").read_text()


def test_read_x12_4010_professional_claim_with_its_separators(tmp_path):
    path = tmp_path / "old.txt"
    path.write_text(CLAIM_4010)
    result = read_x12([path], [])
    row = _row(result, "OLD-9")
    assert row["patient_id"] == "RITA42"  # NM1*QC NM109 (4010 has it)
    assert (row["payer_type"], row["payer_id"], row["place_of_service"]) == (
        "medicare",
        "MCARE",
        "23",
    )
    assert row["patient_age"] == 68 and row["patient_state"] == "OK"
    assert row["billed_date"] == pd.Timestamp("2009-01-15")
    assert result.warnings == []
