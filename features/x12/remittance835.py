"""835 remittance advice to payments, remittance claims and provider-level adjustments.

One ST/SE is one ``Payment`` (BPR: amount, BPR16 date; TRN: trace number and originator; N1*PR:
the payer). Each CLP is a ``RemitClaim`` with every CAS triplet (up to six a segment) at claim
and service-line level, signed as written, and the remark codes of its level (MOA/MIA for the
claim, LQ*HE for a line). PLB pairs are ``ProviderAdjustment``s. Balancing is checked here and
reported as warnings, never a refusal: CLP03 - all CAS = CLP04 per claim, SVC02 - line CAS =
SVC03 per line, BPR02 = sum(CLP04) - sum(PLB) per transaction set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from features.importing import ImportWarning
from features.x12 import codes
from features.x12.envelope import TransactionSet
from features.x12.errors import Location, Origin, X12Error
from features.x12.grammar import REMIT_GRAMMAR, expected_here
from features.x12.values import BadValue, Dates, amount_cents

CLAIM_REMARKS = {"MOA": (3, 4, 5, 6, 7), "MIA": (5, 20, 21, 22, 23)}
LINE_DATES = ("472", "150", "151")
SSN_QUALIFIER = "34"  # never used as a patient identifier
CLAIM_DETAIL = frozenset(("DTM", "LQ", "NM1", "REF", "MOA", "MIA"))  # read inside a claim
HEADER = frozenset(("BPR", "TRN", "N1", "REF"))  # read before the first claim


@dataclass(slots=True)
class Payment:
    """One 835 transaction set: the payment (or notice) and whom it came from."""

    date: str
    trace_number: str
    originator: str
    payer_id: str
    total: int
    origin: Origin

    @property
    def location(self) -> Location:
        """Where its transaction set starts (ST)."""
        return self.origin.at(0, "ST")


@dataclass(slots=True)
class Adjustment:
    """One CAS triplet: group, reason code, signed amount in cents, the remark of its level."""

    group: str
    code: str
    amount: int
    remark: str | None
    line_level: bool


@dataclass(slots=True)
class RemitClaim:
    """One CLP and what its loop said; amounts in cents as written (a reversal is negative)."""

    claim_id: str
    status: str
    charge: int
    paid: int
    filing: str
    payer_claim_number: str
    facility: str
    key: str
    origin: Origin
    index: int
    adjustments: list[Adjustment] = field(default_factory=list)
    record_id: str = ""
    patient_id: str = ""
    insured_id: str = ""
    statement_end: str = ""
    received: str = ""
    line_end: str = ""
    remark: str | None = None
    lines: int = 0
    institutional: bool = False
    emergency: bool = False
    off_campus: bool = False

    @property
    def location(self) -> Location:
        """Where its CLP stands."""
        return self.origin.at(self.index, "CLP")


@dataclass(slots=True)
class ProviderAdjustment:
    """One PLB adjustment pair: reason code, reference (PLB03-2), signed amount in cents."""

    code: str
    reference: str
    amount: int
    key: str
    origin: Origin
    index: int

    @property
    def location(self) -> Location:
        """Where its PLB stands."""
        return self.origin.at(self.index, "PLB")


@dataclass
class Remittance:
    """What one 835 transaction set holds."""

    payment: Payment
    claims: list[RemitClaim]
    provider_adjustments: list[ProviderAdjustment]


class _Line:
    """The service line being read: charge, paid, its CAS total, its remark."""

    __slots__ = ("index", "charge", "paid", "adjusted", "remark", "first")

    def __init__(self, index: int, charge: int, paid: int, first: int):
        self.index = index
        self.charge = charge
        self.paid = paid
        self.adjusted = 0
        self.remark: str | None = None
        self.first = first


class RemittanceReader:
    """Reads 835 transaction sets; one instance per import (dates and warnings are shared)."""

    def __init__(self, dates: Dates, warnings: list[ImportWarning]):
        self.dates = dates
        self.warnings = warnings

    def read(self, transaction: TransactionSet) -> Remittance:
        """The payment, claims and provider adjustments of one 835 transaction set."""
        self.transaction = transaction
        self.header: dict[str, str] = {}
        self.payer = ""
        self.claims: list[RemitClaim] = []
        self.plb: list[ProviderAdjustment] = []
        self.claim: RemitClaim | None = None
        self.line: _Line | None = None
        self.seen: dict[str, int] = {}
        self.component = transaction.separators.component
        element = transaction.separators.element
        segments, ids = transaction.segments, transaction.ids
        state = "header"
        lookup = REMIT_GRAMMAR[state]
        index = 0
        try:
            for index in range(1, len(ids)):
                sid = ids[index]
                moved = lookup.get(sid)
                if moved is None:
                    raise BadValue(
                        f"segment {sid!r} is not expected here "
                        f"(in {state}: {expected_here(REMIT_GRAMMAR, state)})"
                    )
                if moved != state:
                    state, lookup = moved, REMIT_GRAMMAR[moved]
                if sid == "CAS":
                    self._cas(segments[index].split(element))
                elif sid in ("SVC", "CLP", "LX", "PLB", "SE"):
                    self._close_line()
                    if sid == "SVC":
                        self._service(segments[index].split(element), index)
                    elif sid == "CLP":
                        self._close_claim()
                        self._claim(segments[index], index)
                    elif sid == "PLB":
                        self._close_claim()
                        self._provider_adjustment(segments[index], index)
                    else:
                        self._close_claim()
                elif sid in CLAIM_DETAIL:
                    if self.claim is not None:
                        self._claim_detail(sid, segments[index].split(element))
                    elif sid in HEADER:
                        self._header(sid, segments[index].split(element))
                elif sid in HEADER:
                    self._header(sid, segments[index].split(element))
        except BadValue as bad:
            raise X12Error(transaction.location(index), str(bad)) from None
        return self._remittance()

    def _header(self, sid: str, segment: list[str]) -> None:
        """BPR, TRN and the payer's N1/REF before the first claim."""
        if sid == "BPR":
            self.header["total"] = segment[2] if len(segment) > 2 else ""
            date = segment[16] if len(segment) > 16 else ""
            if not date:
                raise BadValue("BPR16: expected the payment date (CCYYMMDD)")
            self.header["date"] = self.dates.date(date, "BPR16")
        elif sid == "TRN":
            self.header["trace"] = segment[2] if len(segment) > 2 else ""
            self.header["originator"] = segment[3] if len(segment) > 3 else ""
        elif sid == "N1":
            self.payer = segment[1] if len(segment) > 1 else ""
            if self.payer == "PR":
                identifier = segment[4] if len(segment) > 4 else ""
                self.header["payer_name"] = segment[2] if len(segment) > 2 else ""
                self.header["payer_id"] = identifier
        elif sid == "REF" and self.payer == "PR" and len(segment) > 2 and segment[1] == "2U":
            self.header.setdefault("payer_ref", segment[2])

    def _claim(self, raw: str, index: int) -> None:
        segment = raw.split(self.transaction.separators.element)
        if "date" not in self.header:
            raise BadValue("CLP before BPR: a remittance needs BPR with its payment date")
        if len(segment) < 5 or not segment[1]:
            raise BadValue("CLP needs CLP01 (claim id) through CLP04 (paid amount)")
        status = segment[2]
        if status not in codes.CLAIM_STATUSES:
            raise BadValue(f"CLP02: expected a claim status code, found {status!r}")
        occurrence = self.seen.get(raw, 0)
        self.seen[raw] = occurrence + 1
        self.claim = RemitClaim(
            claim_id=segment[1],
            status=status,
            charge=amount_cents(segment[3], "CLP03"),
            paid=amount_cents(segment[4], "CLP04"),
            filing=segment[6] if len(segment) > 6 else "",
            payer_claim_number=segment[7] if len(segment) > 7 else "",
            facility=segment[8] if len(segment) > 8 else "",
            key=f"{raw}#{occurrence}",
            origin=self.transaction.origin,
            index=index,
        )

    def _cas(self, segment: list[str]) -> None:
        """Every triplet of a CAS, at the level it stands (a line when one is open)."""
        claim = self.claim
        if claim is None:
            raise BadValue("CAS outside a claim")
        group = segment[1] if len(segment) > 1 else ""
        if group not in codes.CAS_GROUPS:
            raise BadValue(f"CAS01: expected one of {', '.join(codes.CAS_GROUPS)}, found {group!r}")
        line = self.line
        remark = line.remark if line is not None else claim.remark
        adjustments = claim.adjustments
        for start in range(2, min(len(segment), 2 + 3 * codes.CAS_TRIPLETS), 3):
            code = segment[start]
            if not code:
                continue
            if len(segment) <= start + 1 or not segment[start + 1]:
                raise BadValue(f"CAS{start + 1:02d}: expected the amount of reason {code!r}")
            amount = amount_cents(segment[start + 1], f"CAS{start + 1:02d}")
            adjustments.append(Adjustment(group, code, amount, remark, line is not None))
            if line is not None:
                line.adjusted += amount

    def _service(self, segment: list[str], index: int) -> None:
        claim = self.claim
        if len(segment) < 4:
            raise BadValue("SVC needs SVC01 (procedure), SVC02 (charge) and SVC03 (paid)")
        assert claim is not None  # the grammar puts SVC inside a claim
        self.line = _Line(
            index,
            amount_cents(segment[2], "SVC02"),
            amount_cents(segment[3], "SVC03") if segment[3] else 0,
            len(claim.adjustments),
        )
        claim.lines += 1
        procedure = segment[1].split(self.component)
        revenue = procedure[1] if procedure[0] == "NU" and len(procedure) > 1 else ""
        revenue = revenue or (segment[4] if len(segment) > 4 else "")
        if revenue:
            claim.institutional = True
            claim.emergency |= codes.is_emergency_revenue_code(revenue)
        if len(procedure) > 2 and codes.OFF_CAMPUS_MODIFIERS & set(procedure[2:6]):
            claim.off_campus = True

    def _claim_detail(self, sid: str, segment: list[str]) -> None:
        """NM1, REF, DTM, MOA/MIA and LQ of the claim or its open line."""
        claim = self.claim
        assert claim is not None
        if sid == "DTM" and len(segment) > 2:
            qualifier = segment[1]
            if self.line is not None:
                if qualifier in LINE_DATES:
                    claim.line_end = max(claim.line_end, self.dates.date(segment[2], "DTM02"))
            elif qualifier in ("232", "233"):
                end = self.dates.date(segment[2], "DTM02")
                if qualifier == "233" or not claim.statement_end:
                    claim.statement_end = end
            elif qualifier == "050":
                claim.received = self.dates.date(segment[2], "DTM02")
        elif sid == "LQ" and self.line is not None and len(segment) > 2 and segment[1] == "HE":
            line = self.line
            if line.remark is None:
                line.remark = segment[2]
                for adjustment in claim.adjustments[line.first :]:
                    adjustment.remark = adjustment.remark or segment[2]
        elif sid == "NM1" and len(segment) > 9 and segment[8] != SSN_QUALIFIER:
            if segment[1] == "QC":
                claim.patient_id = segment[9]
            elif segment[1] == "IL":
                claim.insured_id = segment[9]
        elif sid == "REF" and self.line is None and len(segment) > 2 and segment[1] == "EA":
            claim.record_id = segment[2]
        elif sid in CLAIM_REMARKS:
            claim.institutional |= sid == "MIA"
            if claim.remark is None:
                self._claim_remark(claim, segment, CLAIM_REMARKS[sid])

    def _claim_remark(self, claim: RemitClaim, segment: list[str], positions: tuple) -> None:
        """The first remark code of MOA/MIA; claim-level CAS read before it get it too."""
        for position in positions:
            if len(segment) > position and segment[position]:
                claim.remark = segment[position]
                for adjustment in claim.adjustments:
                    if not adjustment.line_level and adjustment.remark is None:
                        adjustment.remark = claim.remark
                return

    def _provider_adjustment(self, raw: str, index: int) -> None:
        segment = raw.split(self.transaction.separators.element)
        occurrence = self.seen.get(raw, 0)
        self.seen[raw] = occurrence + 1
        for start in range(3, min(len(segment), 15), 2):
            if not segment[start]:
                continue
            reason, _, reference = segment[start].partition(self.component)
            if len(segment) <= start + 1 or not segment[start + 1]:
                raise BadValue(f"PLB{start + 1:02d}: expected the amount of {reason!r}")
            amount = amount_cents(segment[start + 1], f"PLB{start + 1:02d}")
            key = f"{raw}#{occurrence}#{start}"
            self.plb.append(
                ProviderAdjustment(reason, reference, amount, key, self.transaction.origin, index)
            )

    def _close_line(self) -> None:
        line = self.line
        if line is None:
            return
        self.line = None
        difference = line.charge - line.adjusted - line.paid
        if difference:
            self._warn(
                "line_balance",
                self.transaction.location(line.index),
                f"service line does not balance: SVC02 - line CAS - SVC03 = {_dollars(difference)}",
            )

    def _close_claim(self) -> None:
        claim = self.claim
        if claim is None:
            return
        self.claim = None
        adjusted = sum(adjustment.amount for adjustment in claim.adjustments)
        difference = claim.charge - adjusted - claim.paid
        if difference:
            self._warn(
                "claim_balance",
                claim.location,
                f"claim does not balance: CLP03 - CAS - CLP04 = {_dollars(difference)}",
                claim.claim_id,
            )
        self.claims.append(claim)

    def _remittance(self) -> Remittance:
        """The transaction set's payment, with its BPR02 balancing check."""
        header = self.header
        if "date" not in header:
            raise X12Error(
                self.transaction.location(0),
                "the remittance has no BPR segment (payment amount and date)",
            )
        if "trace" not in header:
            raise X12Error(
                self.transaction.location(0), "the remittance has no TRN segment (trace number)"
            )
        total = amount_cents(header["total"], "BPR02") if header["total"] else 0
        paid = sum(claim.paid for claim in self.claims)
        withheld = sum(adjustment.amount for adjustment in self.plb)
        if total != paid - withheld:
            self._warn(
                "payment_balance",
                self.transaction.location(0),
                f"BPR02 {_dollars(total)} is not sum(CLP04) {_dollars(paid)} - "
                f"sum(PLB) {_dollars(withheld)}",
            )
        payer_id = (
            header.get("payer_id")
            or header.get("payer_ref")
            or header.get("originator")
            or header.get("payer_name")
            or "UNKNOWN"
        )
        payment = Payment(
            header["date"],
            header["trace"],
            header["originator"],
            payer_id,
            total,
            self.transaction.origin,
        )
        return Remittance(payment, self.claims, self.plb)

    def _warn(self, kind: str, location: Location, message: str, claim_id: str | None = None):
        self.warnings.append(ImportWarning(kind, location, message, claim_id))


def _dollars(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) // 100:,}.{abs(cents) % 100:02d}"
