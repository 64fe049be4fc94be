"""The synthetic history as a billing system would export it: 837 claims, 835 remittances and
the billing system's own events (``patient_events.csv``), for ``arscore generate --x12 DIR``.

``write_x12(claims, transactions, out_dir)`` writes, from the frames ``generate_history``
returns (it never changes them):
- ``837/claims_YYYY-MM.x12``: one interchange per billing month, a functional group per claim
  type (005010X222A1 professional, 005010X223A2 institutional), a transaction set (a batch) per
  billing day (BHT04). The medical record number (REF*EA) is the patient id, DMG a birth date
  that gives the claim's age at the service date, N4 the state and a ZIP in the ZIP3, HCP02 the
  expected amount. Institutional claims bill type 11x (inpatient) or 13x with a revenue code
  telling emergency (0450) and a PO modifier telling an off-campus department apart. Self-pay
  claims carry SBR09 09, the 4010 code for self-pay (5010 lists none).
- ``835/<payer>_YYYY-MM.835``: one interchange per payer and payment month, a transaction set
  (a check) per payment day. Payer payments, CO-45 contractual adjustments, PR transfers and
  denials of a claim on one day are one CLP (CLP02 1). A second payer payment (the generator's
  overpayment) is a CLP processed as secondary whose OA-23 carries the earlier adjudication,
  so that only its payment is posted. A refund is a PLB WO naming the claim, with an FB forward
  balance when the recoveries exceed the day's payments (then BPR01 H, no money moved).
  Inpatient claims carry their CAS at claim level (with MIA, its MIA05 the remark code), the
  others on one service line (LQ*HE for the remark).
- ``patient_events.csv``: every other transaction (statements, patient payments, plans,
  financial assistance, disputes, appeals, write-offs) in the interchange format.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

PATIENT_EVENTS_FILE = "patient_events.csv"
CLAIMS_DIR, REMITS_DIR = "837", "835"
SEPARATOR, COMPONENT, TERMINATOR = "*", ":", "~\n"
SENDER, RECEIVER, PROVIDER_NPI = "ARSCORESYNTH", "CLEARINGHOUSE", "1234567893"
VERSIONS = {"professional": "005010X222A1", "institutional": "005010X223A2"}
FILING = {  # payer type -> SBR09 / CLP06 claim filing indicator
    "commercial": "CI",
    "medicare": "MB",
    "medicare_advantage": "16",
    "medicaid": "MC",
    "self_pay": "09",
    "workers_comp": "WC",
    "tricare_va": "CH",
    "other": "ZZ",
}
FILING_BY_PAYER = {"BCBS01": "BL", "VACCN": "VA", "AUTO01": "AM"}
REMIT_FILING = {"CI": "12", "BL": "12"}
INSTITUTIONAL_LINES = {  # place of service -> (type of bill, revenue code, procedure composite)
    "21": ("111", "0120", ""),
    "22": ("131", "0510", "HC:99213"),
    "23": ("131", "0450", "HC:99284"),
    "19": ("131", "0510", "HC:99213:PO"),
}
INPATIENT_STAY_DAYS = 2
BANK_ACCOUNTS = ("01", "011000015", "DA", "123456789", "1512345678", "")
BANK_ACCOUNTS += ("01", "021000021", "DA", "987654321")  # BPR06-BPR15: payer's, then ours


@dataclass(frozen=True)
class X12Files:
    """What ``write_x12`` wrote."""

    claim_files: tuple[Path, ...]
    remit_files: tuple[Path, ...]
    patient_events: Path
    remitted_transactions: int
    patient_transactions: int


def remitted(transactions: pd.DataFrame) -> np.ndarray:
    """Which transactions an 835 carries: payer payments and refunds, contractual adjustments,
    transfers and denials."""
    kind = transactions["type"].astype("string").fillna("")
    payer = (transactions["party"].astype("string") == "payer").fillna(False)
    contractual = (transactions["reason"].astype("string") == "contractual").fillna(False)
    mask = (
        (kind.isin(["payment", "refund"]) & payer)
        | ((kind == "adjustment") & contractual)
        | kind.isin(["transfer", "denial"])
    )
    return mask.to_numpy(dtype=bool)


def write_x12(claims: pd.DataFrame, transactions: pd.DataFrame, out_dir: Path) -> X12Files:
    """Write the history as 837 and 835 files plus ``patient_events.csv`` under ``out_dir``.

    The folders ``837`` and ``835`` must not hold files yet; everything is written in a hidden
    temporary folder beside them and moved into place at the end.
    """
    out_dir = Path(out_dir)
    for name in (CLAIMS_DIR, REMITS_DIR):
        if (out_dir / name).exists() and any((out_dir / name).iterdir()):
            raise FileExistsError(f"{out_dir / name} already holds files: choose an empty folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    mask = remitted(transactions)
    staging = Path(tempfile.mkdtemp(prefix=".x12-", dir=out_dir))
    try:
        claim_files = _write_claims(claims, staging / CLAIMS_DIR)
        remit_files = _write_remittances(claims, transactions[mask], staging / REMITS_DIR)
        events = transactions[~mask]
        events.to_csv(
            staging / PATIENT_EVENTS_FILE, index=False, date_format="%Y-%m-%d", float_format="%.2f"
        )
        for name in (CLAIMS_DIR, REMITS_DIR):
            if (out_dir / name).exists():
                (out_dir / name).rmdir()
            os.replace(staging / name, out_dir / name)
        os.replace(staging / PATIENT_EVENTS_FILE, out_dir / PATIENT_EVENTS_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return X12Files(
        tuple(out_dir / CLAIMS_DIR / p.name for p in claim_files),
        tuple(out_dir / REMITS_DIR / p.name for p in remit_files),
        out_dir / PATIENT_EVENTS_FILE,
        int(mask.sum()),
        int((~mask).sum()),
    )


def _amount(dollars: float) -> str:
    """An X12 decimal: whole dollars without decimals, else two."""
    cents = int(round(dollars * 100))
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}" if part == 0 else f"{sign}{whole}.{part:02d}"


def _segment(*elements: object) -> str:
    return SEPARATOR.join(map(str, elements)).rstrip(SEPARATOR)


class _Envelope:
    """Interchange, group and transaction-set control numbers, counted across files."""

    def __init__(self) -> None:
        self.interchange = 0

    def wrap(self, day: str, groups: Iterable[tuple[str, str, list[list[str]]]]) -> list[str]:
        """ISA..IEA around (functional id, version, transaction-set bodies) groups."""
        self.interchange += 1
        control = f"{self.interchange:09d}"
        parties = ("ZZ", SENDER.ljust(15), "ZZ", RECEIVER.ljust(15))
        header = ("00", " " * 10, "00", " " * 10, *parties, day[2:], "1200", "^", "00501")
        out = [_segment("ISA", *header, control, "0", "P", COMPONENT)]
        count = 0
        for number, (functional_id, version, bodies) in enumerate(groups, start=1):
            kind = "837" if functional_id == "HC" else "835"
            out.append(
                _segment("GS", functional_id, SENDER, RECEIVER, day, "1200", number, "X", version)
            )
            for set_number, body in enumerate(bodies, start=1):
                out.append(_segment("ST", kind, f"{set_number:04d}", version))
                out += body
                out.append(_segment("SE", len(body) + 2, f"{set_number:04d}"))
            out.append(_segment("GE", len(bodies), number))
            count = number
        out.append(_segment("IEA", count, control))
        return out


def _write_claims(claims: pd.DataFrame, folder: Path) -> list[Path]:
    """837 files, one interchange per billing month: a functional group per claim type and a
    transaction set (a batch) per billing day."""
    folder.mkdir(parents=True)
    by_month: dict[str, dict[str, dict[str, list[dict]]]] = {}
    for claim in _claim_records(claims):
        month = by_month.setdefault(claim["billed"][:6], {})
        month.setdefault(claim["claim_type"], {}).setdefault(claim["billed"], []).append(claim)
    envelope = _Envelope()
    files = []
    for month in sorted(by_month):
        kinds = by_month[month]
        last_day = max(day for days in kinds.values() for day in days)
        groups = [
            (
                "HC",
                VERSIONS[kind],
                [_claims_body(kinds[kind][day], day, kind) for day in sorted(kinds[kind])],
            )
            for kind in ("professional", "institutional")
            if kind in kinds
        ]
        segments = envelope.wrap(last_day, groups)
        files.append(_write_file(folder / f"claims_{month[:4]}-{month[4:]}.x12", segments))
    return files


def _claim_records(claims: pd.DataFrame) -> list[dict]:
    """The claims as dicts, with service and billed dates as CCYYMMDD."""
    frame = claims.assign(
        billed=_days(claims["billed_date"]), service=_days(claims["service_date"])
    )
    return frame.to_dict("records")


def _write_file(path: Path, segments: list[str]) -> Path:
    path.write_text(TERMINATOR.join(segments) + TERMINATOR, encoding="ascii")
    return path


def _claims_body(claims: list[dict], day: str, claim_type: str) -> list[str]:
    """BHT, submitter, receiver and billing provider, then one subscriber loop per claim."""
    body = [
        _segment("BHT", "0019", "00", f"B{day}", day, "1200", "CH"),
        _segment("NM1", "41", "2", "SYNTHETIC HEALTH", "", "", "", "", "46", "SYN001"),
        _segment("PER", "IC", "BILLING OFFICE", "TE", "5555550100"),
        _segment("NM1", "40", "2", RECEIVER, "", "", "", "", "46", "CH001"),
        _segment("HL", 1, "", "20", 1),
        _segment("NM1", "85", "2", "SYNTHETIC HEALTH", "", "", "", "", "XX", PROVIDER_NPI),
        _segment("N3", "1 HOSPITAL WAY"),
        _segment("N4", "AUSTIN", "TX", "787011234"),
        _segment("REF", "EI", "123456789"),
    ]
    for number, claim in enumerate(claims, start=2):
        body += _subscriber_loop(claim, number, claim_type)
        body += _claim_loop(claim, claim_type)
    return body


def _missing(value: object) -> bool:
    return value is None or bool(pd.isna(value))  # type: ignore[arg-type]


def _subscriber_loop(claim: dict, number: int, claim_type: str) -> list[str]:
    """HL 22, SBR, the subscriber (the patient) and the payer."""
    state = "" if _missing(claim["patient_state"]) else claim["patient_state"]
    zip_code = "" if _missing(claim["patient_zip3"]) else f"{claim['patient_zip3']}01"
    out = [
        _segment("HL", number, 1, "22", 0),
        _segment("SBR", "P", "18", "", "", "", "", "", "", _filing(claim, claim_type)),
        _segment("NM1", "IL", "1", "PATIENT", "SYNTHETIC", "", "", "", "MI", _member(claim)),
        _segment("N3", "1 MAIN ST"),
        _segment("N4", "CITY", state, zip_code),
    ]
    if not _missing(claim["patient_age"]):
        out.append(_segment("DMG", "D8", _birth_date(claim["service"], claim["patient_age"]), "U"))
    payer = claim["payer_id"]
    out.append(_segment("NM1", "PR", "2", payer, "", "", "", "", "PI", payer))
    return out


def _claim_loop(claim: dict, claim_type: str) -> list[str]:
    """CLM with its dates, medical record number, expected amount and one service line."""
    service, charge = claim["service"], _amount(claim["total_charge"])
    place = claim["place_of_service"]
    if claim_type == "professional":
        out = [
            _segment("CLM", claim["claim_id"], charge, "", "", f"{place}:B:1", "Y", "A", "Y", "Y")
        ]
        line = _segment("SV1", "HC:99213", charge, "UN", 1, "", "", 1)
    else:
        bill, revenue, procedure = INSTITUTIONAL_LINES[place]
        start = _shift(service, -INPATIENT_STAY_DAYS) if place == "21" else service
        out = [
            _segment(
                "CLM",
                claim["claim_id"],
                charge,
                "",
                "",
                f"{bill[:2]}:A:{bill[2]}",
                "",
                "A",
                "Y",
                "Y",
            ),
            _segment("DTP", "434", "RD8", f"{start}-{service}"),
            _segment("CL1", "1", "7", "01"),
        ]
        line = _segment("SV2", revenue, procedure, charge, "UN", 1)
    out += [_segment("REF", "EA", claim["patient_id"]), _segment("HI", "ABK:Z0000")]
    if not _missing(claim["expected_amount"]):
        out.append(_segment("HCP", "03", _amount(claim["expected_amount"])))
    return [*out, _segment("LX", 1), line, _dtp(service)]


def _dtp(day: str) -> str:
    return _segment("DTP", "472", "D8", day)


def _member(claim: dict) -> str:
    return f"M{claim['patient_id']}"


def _days(values: pd.Series) -> np.ndarray:
    return pd.to_datetime(values).dt.strftime("%Y%m%d").to_numpy(dtype=object)


def _birth_date(service: str, age: object) -> str:
    """A birth date at which the patient is ``age`` years old on ``service`` (CCYYMMDD)."""
    year = int(service[:4]) - int(age)  # type: ignore[call-overload]
    return f"{year}0228" if service[4:] == "0229" else f"{year}{service[4:]}"


def _remit_filing(claim: dict, claim_type: str) -> str:
    """CLP06: the 835's code list has no CI or BL; commercial plans show as 12 (PPO)."""
    code = _filing(claim, claim_type)
    return REMIT_FILING.get(code, code)


def _filing(claim: dict, claim_type: str) -> str:
    if claim["payer_type"] == "medicare" and claim_type == "institutional":
        return "MA"
    return FILING_BY_PAYER.get(claim["payer_id"], FILING[claim["payer_type"]])


def _shift(day: str, days: int) -> str:
    moved = datetime.date(int(day[:4]), int(day[4:6]), int(day[6:])) + datetime.timedelta(days)
    return moved.strftime("%Y%m%d")


def _write_remittances(claims: pd.DataFrame, remits: pd.DataFrame, folder: Path) -> list[Path]:
    """835 files, one interchange per payer and payment month, a transaction set (a check) per
    payment day."""
    folder.mkdir(parents=True)
    by_claim = {claim["claim_id"]: claim for claim in _claim_records(claims)}
    checks: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for event in remits.assign(day=_days(remits["date"])).to_dict("records"):
        payer = by_claim[event["claim_id"]]["payer_id"]
        month = checks.setdefault((payer, event["day"][:6]), {})
        month.setdefault(event["day"], []).append(event)
    envelope = _Envelope()
    files = []
    for payer, month in sorted(checks):
        days = checks[(payer, month)]
        bodies = [
            _remittance_body(days[day], by_claim, payer, day, f"{payer}{day}")
            for day in sorted(days)
        ]
        segments = envelope.wrap(max(days), [("HP", "005010X221A1", bodies)])
        files.append(_write_file(folder / f"{payer}_{month[:4]}-{month[4:]}.835", segments))
    return files


def _remittance_body(
    events: list[dict], claims: dict[str, dict], payer: str, day: str, trace: str
) -> list[str]:
    """BPR, TRN, payer and payee, the day's CLPs, and PLB for refunds."""
    per_claim: dict[str, list[dict]] = {}
    for event in events:
        per_claim.setdefault(event["claim_id"], []).append(event)
    clps: list[list[str]] = []
    paid_total, recovered = 0.0, []
    for claim_id, claim_events in per_claim.items():
        for clp, paid in _claim_payments(claims[claim_id], claim_events):
            clps.append(clp)
            paid_total += paid
        recovered += [e for e in claim_events if e["type"] == "refund"]
    pairs = [(f"WO{COMPONENT}{e['claim_id']}", e["amount"]) for e in recovered]
    total = round(paid_total - sum(amount for _, amount in pairs), 2)
    if total < 0:
        pairs.append((f"FB{COMPONENT}{trace}", total))
        total = 0.0
    if total > 0:
        bpr = _segment("BPR", "C", _amount(total), "C", "ACH", "CCP", *BANK_ACCOUNTS, day)
    else:
        bpr = _segment("BPR", "H", "0", "C", "NON", *([""] * 11), day)
    body = [
        bpr,
        _segment("TRN", "1", trace, "1512345678"),
        _segment("DTM", "405", day),
        _segment("N1", "PR", payer, "XV", payer),
        _segment("N3", "1 PAYER PLAZA"),
        _segment("N4", "HARTFORD", "CT", "06101"),
        _segment("PER", "BL", "EDI SUPPORT", "TE", "8005550100"),
        _segment("N1", "PE", "SYNTHETIC HEALTH", "XX", PROVIDER_NPI),
    ]
    if clps:
        body.append(_segment("LX", 1))
        for clp in clps:
            body += clp
    for start in range(0, len(pairs), 6):
        chunk = [
            element
            for code, amount in pairs[start : start + 6]
            for element in (code, _amount(amount))
        ]
        body.append(_segment("PLB", PROVIDER_NPI, f"{day[:4]}1231", *chunk))
    return body


def _claim_payments(claim: dict, events: list[dict]) -> list[tuple[list[str], float]]:
    """The CLPs of one claim on one day, with what each pays: the first payment with the
    day's adjustments (CLP02 1), any other payment as processed after a prior payer."""
    payments = [e["amount"] for e in events if e["type"] == "payment"]
    adjustments = [e for e in events if e["type"] in ("adjustment", "transfer", "denial")]
    out = []
    if adjustments:
        paid = payments.pop(0) if payments else 0.0
        out.append((_clp(claim, "1", paid, adjustments), paid))
    for again in payments:
        prior = {
            "carc_group": "OA",
            "carc_code": "23",
            "amount": claim["total_charge"] - again,
            "rarc_code": None,
        }
        out.append((_clp(claim, "2", again, [prior]), again))
    return out


def _clp(claim: dict, status: str, paid: float, adjustments: list[dict]) -> list[str]:
    """One CLP loop: claim-level CAS and MIA for inpatient claims, else one service line."""
    claim_type, place = claim["claim_type"], claim["place_of_service"]
    inpatient = claim_type == "institutional" and place == "21"
    bill, revenue, procedure = INSTITUTIONAL_LINES.get(place, ("", "", ""))
    facility = bill[:2] if claim_type == "institutional" else place
    patient_share = sum(a["amount"] for a in adjustments if a["carc_group"] == "PR")
    remark = next((a["rarc_code"] for a in adjustments if not _missing(a["rarc_code"])), None)
    charge = _amount(claim["total_charge"])
    out = [
        _segment(
            "CLP",
            claim["claim_id"],
            status,
            charge,
            _amount(paid),
            _amount(patient_share),
            _remit_filing(claim, claim_type),
            f"PCN{claim['claim_id']}",
            facility,
            "1",
        ),
    ]
    cas = _cas(adjustments)
    if inpatient:
        out += cas
    out.append(_segment("NM1", "QC", "1", "PATIENT", "SYNTHETIC", "", "", "", "MI", _member(claim)))
    if inpatient:  # inpatient adjudication: covered days, and the remark code in MIA05
        out.append(_segment("MIA", "0", "", "", "", remark or ""))
    out.append(_segment("REF", "EA", claim["patient_id"]))
    if claim_type == "institutional":
        start = _shift(claim["service"], -INPATIENT_STAY_DAYS) if inpatient else claim["service"]
        out += [_segment("DTM", "232", start), _segment("DTM", "233", claim["service"])]
    out.append(_segment("DTM", "050", claim["billed"]))
    if not inpatient:
        if claim_type == "institutional":
            line = _segment(
                "SVC", procedure or f"NU{COMPONENT}{revenue}", charge, _amount(paid), revenue, 1
            )
        else:
            line = _segment("SVC", "HC:99213", charge, _amount(paid), "", 1)
        out += [line, _segment("DTM", "472", claim["service"]), *cas]
        if remark:
            out.append(_segment("LQ", "HE", remark))
    return out


def _cas(adjustments: list[dict]) -> list[str]:
    """CAS segments: one per group, up to six reason/amount triplets each."""
    by_group: dict[str, list[dict]] = {}
    for adjustment in adjustments:
        by_group.setdefault(adjustment["carc_group"], []).append(adjustment)
    out = []
    for group, items in by_group.items():
        for start in range(0, len(items), 6):
            triplets = []
            for item in items[start : start + 6]:
                triplets += [item["carc_code"], _amount(item["amount"]), ""]
            out.append(_segment("CAS", group, *triplets))
    return out
