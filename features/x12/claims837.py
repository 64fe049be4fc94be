"""837 claims (professional and institutional) to claim records of the interchange format.

One ``BilledClaim`` per CLM: CLM01 is ``claim_id``, CLM02 the total charge, CLM05 the place of
service (professional) or the type of bill (institutional, mapped to a place of service), the
subscriber and patient loops give the patient (REF*EA medical record number first), the age
from DMG and state and ZIP3 from N4; SBR09 gives the payer type, NM1*PR the payer id, DTP*472
and DTP*434 the service date (the end of the service or statement period), BHT04 (or the
group's date) the billed date, HCP02 (repriced allowed amount) or CN102 (contract amount) the
expected amount. Several submissions of one claim are merged by ``merge_claims``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from features.importing import ImportWarning
from features.x12 import codes
from features.x12.envelope import TransactionSet
from features.x12.errors import Location, Origin, X12Error
from features.x12.grammar import CLAIM_GRAMMAR, HL_LEVELS, expected_here
from features.x12.values import BadValue, Dates, age_at, amount_cents, optional_cents

INSTITUTIONAL_VERSIONS = ("X223", "X096")
PROFESSIONAL_VERSIONS = ("X222", "X098", "X224", "X097")  # dental (X224, X097) as professional
REPLACEMENT, VOID = "7", "8"
CLAIM_LOOPS = frozenset(("claim", "line"))  # 2300 and 2400: read for the claim being built
CONTEXT_LOOPS = frozenset(("header", "subscriber", "subscriber_name", "patient", "patient_name"))
READ_IN_CLAIM = frozenset(("DTP", "REF", "HCP", "CN1", "SV2"))
READ_IN_CONTEXT = frozenset(("BHT", "SBR", "NM1", "N4", "DMG"))


@dataclass(slots=True)
class BilledClaim:
    """One claim as an 837 billed it, money in cents and dates as CCYYMMDD."""

    claim_id: str
    patient_id: str
    payer_id: str
    payer_type: str
    claim_type: str
    place_of_service: str
    service_date: str
    billed_date: str
    total_charge: int
    expected_amount: int | None
    patient_age: int | None
    patient_state: str | None
    patient_zip3: str | None
    frequency: str
    origin: Origin
    index: int
    first_billed_date: str = ""
    voided: bool = False

    @property
    def location(self) -> Location:
        """Where its CLM stands."""
        return self.origin.at(self.index, "CLM")


@dataclass(slots=True)
class _Person:
    """Who a loop names: identifier, birth date, state and ZIP3."""

    member_id: str = ""
    birth: str = ""
    state: str | None = None
    zip3: str | None = None


@dataclass(slots=True)
class _Claim:
    """A CLM being read, until the next CLM, HL or SE closes it."""

    index: int
    segment: list[str]
    charge: int
    facility: list[str]
    record_id: str = ""
    statement_end: str = ""
    service_end: str = ""
    expected: int | None = None
    contract: int | None = None
    emergency: bool = False
    off_campus: bool = False


class ClaimReader:
    """Reads the claims of 837 transaction sets; one instance per import (dates are shared)."""

    def __init__(self, dates: Dates, warnings: list[ImportWarning]):
        self.dates = dates
        self.warnings = warnings
        self.lines = 0

    def read(self, transaction: TransactionSet) -> list[BilledClaim]:
        """The claims of one 837 transaction set, in file order."""
        self.transaction = transaction
        self.billed = transaction.interchange_date
        self.claims: list[BilledClaim] = []
        self.subscriber = self.patient = _Person()
        self.filing = self.payer_id = self.entity = ""
        self.level = ""
        self.claim: _Claim | None = None
        component = transaction.separators.component
        element = transaction.separators.element
        segments, ids = transaction.segments, transaction.ids
        state = "header"
        lookup = CLAIM_GRAMMAR[state]
        index = 0
        try:
            for index in range(1, len(ids)):
                sid = ids[index]
                moved = lookup.get(sid)
                if moved is None:
                    raise BadValue(
                        f"segment {sid!r} is not expected here "
                        f"(in {state}: {expected_here(CLAIM_GRAMMAR, state)})"
                    )
                if moved != state and sid != "HL":  # HL's level decides its state, below
                    state, lookup = moved, CLAIM_GRAMMAR[moved]
                if sid in READ_IN_CLAIM:
                    if moved in CLAIM_LOOPS:
                        segment = segments[index].split(element)
                        self._claim_detail(sid, segment, component, moved)
                elif sid in READ_IN_CONTEXT:
                    if moved in CONTEXT_LOOPS:
                        self._context(sid, segments[index].split(element))
                elif sid == "LX":
                    self.lines += 1
                elif sid in ("CLM", "HL", "SE"):
                    self._close_claim()
                    if sid == "CLM":
                        self.claim = self._open_claim(index, segments[index].split(element))
                    elif sid == "HL":
                        state = self._start_level(segments[index].split(element))
                        lookup = CLAIM_GRAMMAR[state]
        except BadValue as bad:
            raise X12Error(transaction.location(index), str(bad)) from None
        return self.claims

    def _open_claim(self, index: int, segment: list[str]) -> _Claim:
        """A CLM: its id, charge (CLM02) and CLM05 composite are checked where they stand."""
        if len(segment) < 6 or not segment[1]:
            raise BadValue("CLM needs CLM01 (claim id), CLM02 (charge) and CLM05")
        facility = segment[5].split(self.transaction.separators.component)
        return _Claim(index, segment, amount_cents(segment[2], "CLM02"), facility + [""] * 3)

    def _start_level(self, segment: list[str]) -> str:
        """A new HL level (HL03): its state in the grammar; a subscriber starts afresh."""
        level = segment[3] if len(segment) > 3 else ""
        if level not in HL_LEVELS:
            raise BadValue(f"HL03: expected one of {', '.join(HL_LEVELS)}, found {level!r}")
        self.level = level
        if level == "22":
            self.subscriber = self.patient = _Person()
            self.filing = self.payer_id = ""
        elif level == "23":
            self.patient = _Person(
                state=self.subscriber.state, zip3=self.subscriber.zip3, member_id=""
            )
        self.entity = ""
        return HL_LEVELS[level]

    def _context(self, sid: str, segment: list[str]) -> None:
        """Header, subscriber and patient segments: billed date, payer, who the patient is."""
        if sid == "BHT":
            if len(segment) > 4 and segment[4]:
                self.billed = self.dates.date(segment[4], "BHT04")
        elif sid == "SBR":
            self.filing = segment[9] if len(segment) > 9 else ""
        elif sid == "NM1":
            self.entity = segment[1] if len(segment) > 1 else ""
            identifier = segment[9] if len(segment) > 9 else ""
            if self.entity == "PR":
                self.payer_id = identifier or (segment[3] if len(segment) > 3 else "")
            elif self.entity == "IL" and self.level == "22":
                self.subscriber.member_id = identifier
            elif self.entity == "QC":
                self.patient.member_id = identifier
        elif sid == "N4" and self.entity in ("IL", "QC"):
            person = self.patient if self.level == "23" else self.subscriber
            person.state = (segment[2] if len(segment) > 2 else "") or None
            postal = segment[3] if len(segment) > 3 else ""
            person.zip3 = postal[:3] if len(postal) >= 3 and postal[:3].isdigit() else None
        elif sid == "DMG" and len(segment) > 2 and segment[2]:
            person = self.patient if self.level == "23" else self.subscriber
            person.birth = self.dates.date(segment[2], "DMG02")

    def _claim_detail(self, sid: str, segment: list[str], component: str, moved: str) -> None:
        """Segments of the claim and its lines that the mapping reads."""
        claim = self.claim
        if claim is None:
            return
        if sid == "DTP" and len(segment) > 3:
            qualifier = segment[1]
            if qualifier in ("434", "472"):
                end = self.dates.period_end(segment[2], segment[3], f"DTP*{qualifier}")
                if qualifier == "434":
                    claim.statement_end = max(claim.statement_end, end)
                else:
                    claim.service_end = max(claim.service_end, end)
        elif sid == "REF" and len(segment) > 2 and segment[1] == "EA" and moved == "claim":
            claim.record_id = segment[2]
        elif sid == "HCP" and moved == "claim":
            claim.expected = optional_cents(segment, 2, "HCP02")
        elif sid == "CN1" and moved == "claim":
            claim.contract = optional_cents(segment, 2, "CN102")
        elif sid == "SV2":
            revenue = segment[1] if len(segment) > 1 else ""
            claim.emergency |= codes.is_emergency_revenue_code(revenue)
            procedure = segment[2].split(component) if len(segment) > 2 else []
            claim.off_campus |= bool(codes.OFF_CAMPUS_MODIFIERS & set(procedure[2:6]))

    def _close_claim(self) -> None:
        claim = self.claim
        if claim is None:
            return
        self.claim = None
        self.claims.append(self._billed(claim))

    def _billed(self, claim: _Claim) -> BilledClaim:
        """The claim record of a CLM and what its loops said."""
        segment, facility = claim.segment, claim.facility
        transaction = self.transaction

        def where() -> Location:
            return transaction.location(claim.index)

        claim_type = self._claim_type(facility[1], where)
        service_date = self._service_date(claim, claim_type, where)
        place = self._place_of_service(facility[0], claim, claim_type, where)
        patient = self.patient if self.level == "23" else self.subscriber
        age = None
        if patient.birth:
            age = age_at(
                self.dates.parse(patient.birth, "DMG02"), self.dates.parse(service_date, "")
            )
        return BilledClaim(
            claim_id=segment[1],
            patient_id=self._patient_id(claim, patient, segment[1], where),
            payer_id=self.payer_id or "UNKNOWN",
            payer_type=codes.payer_type(self.filing),
            claim_type=claim_type,
            place_of_service=place,
            service_date=service_date,
            billed_date=self.billed,
            total_charge=claim.charge,
            expected_amount=claim.expected if claim.expected is not None else claim.contract,
            patient_age=age,
            patient_state=patient.state,
            patient_zip3=patient.zip3,
            frequency=facility[2] or "1",
            origin=self.transaction.origin,
            index=claim.index,
        )

    def _claim_type(self, qualifier: str, where: Callable[[], Location]) -> str:
        """CLM05-2 (A: institutional bill type, B: professional place of service), else the
        guide's version in ST03/GS08."""
        if qualifier == "A":
            return "institutional"
        if qualifier == "B":
            return "professional"
        version = self.transaction.version
        if any(mark in version for mark in INSTITUTIONAL_VERSIONS):
            return "institutional"
        if any(mark in version for mark in PROFESSIONAL_VERSIONS):
            return "professional"
        raise X12Error(where(), f"cannot tell professional from institutional ({version!r})")

    def _service_date(self, claim: _Claim, claim_type: str, where: Callable[[], Location]) -> str:
        first, second = (
            (claim.statement_end, claim.service_end)
            if claim_type == "institutional"
            else (claim.service_end, claim.statement_end)
        )
        date = first or second
        if not date:
            raise X12Error(where(), "the claim has no service date (DTP*472 or DTP*434)")
        return date

    def _place_of_service(
        self, code: str, claim: _Claim, claim_type: str, where: Callable[[], Location]
    ) -> str:
        if claim_type == "professional":
            if not code:
                raise X12Error(where(), "CLM05-1: expected a place of service code")
            return code
        place = codes.institutional_place_of_service(code, claim.emergency, claim.off_campus)
        if place is None:
            self.warnings.append(
                ImportWarning(
                    "unknown_type_of_bill",
                    where(),
                    f"type of bill {code!r} is not in the place-of-service table: "
                    f"place of service {codes.UNKNOWN_PLACE_OF_SERVICE}",
                )
            )
            return codes.UNKNOWN_PLACE_OF_SERVICE
        return place

    def _patient_id(
        self, claim: _Claim, patient: _Person, claim_id: str, where: Callable[[], Location]
    ) -> str:
        """REF*EA; else the patient's own member id; else subscriber id and birth date
        (a dependent); else the claim itself, with a warning."""
        if claim.record_id:
            return claim.record_id
        if self.level != "23" and self.subscriber.member_id:
            return self.subscriber.member_id
        if self.level == "23" and patient.member_id:
            return patient.member_id
        if self.level == "23" and self.subscriber.member_id and patient.birth:
            return f"{self.subscriber.member_id}-{patient.birth}"
        self.warnings.append(
            ImportWarning(
                "no_patient_id",
                where(),
                "no medical record number (REF*EA) nor member id: the claim is its own patient",
                claim_id,
            )
        )
        return f"claim:{claim_id}"


def merge_claims(claims: list[BilledClaim]) -> dict[str, BilledClaim]:
    """One record per claim id: the latest submission's fields, the first billed date; a void
    (CLM05-3 = 8) as the latest submission marks the claim voided."""
    merged: dict[str, BilledClaim] = {}
    for claim in claims:
        known = merged.get(claim.claim_id)
        if known is None:
            claim.first_billed_date = claim.billed_date
            merged[claim.claim_id] = claim
            continue
        first = min(known.first_billed_date, claim.billed_date)
        latest = claim if claim.billed_date >= known.billed_date else known
        latest.first_billed_date = first
        merged[claim.claim_id] = latest
    for claim in merged.values():
        claim.voided = claim.frequency == VOID
    return merged
