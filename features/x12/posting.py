"""Remittances posted as transactions of the interchange format, with the rules of the field.

Per remittance claim (CLP), dated with its payment's BPR16:
- CLP04 > 0 is a `payment` by the payer; a negative CLP04 (a reversal) a `refund` to the payer.
- CAS amounts are summed by group and reason code over the claim and its lines (one row per
  code, the first remark code of its level as `rarc_code`):
  PR is a `transfer` to the patient (negative: back to the payer); CO, OA or PI with a denial
  CARC (``codes.DENIAL_CARCS``), and every CO of a denied (CLP02 4) or not-our-claim (23)
  claim, is a `denial`; other CO is an `adjustment` with reason `contractual`; OA and PI (and
  4010's CR) are adjustments with reason `other`; OA-23 (a prior payer's adjudication) is not
  posted, since the prior payer's own remittance posted it.
- The interchange format has no negative adjustment: a negative adjustment total (a reversal,
  CLP02 22, negates every amount of the claim payment it reverses) lowers the claim's earlier
  adjustments of the same group and code, latest first; what finds nothing to lower is a
  warning. A negative denial leaves the denial in the history: it happened.
- PR of a secondary or tertiary remittance (CLP02 2, 3, 20, 21) restates what is left for the
  patient after the earlier payers; it is posted only when no earlier remittance moved a share
  of the claim to the patient.
- CLP02 25 (predetermination) is skipped with a note. A CLP read twice (the same TRN02, TRN03 and
  CLP segment, as when the same 835 is given twice) adds nothing; the same claim in two
  payments (primary then secondary) keeps both.
- PLB WO (overpayment recovery) naming a claim in PLB03-2 (its CLP01, or the payer's CLP07) is a
  `refund` on that claim; every other PLB goes to the provider ledger.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.importing import ImportWarning, dates_of, text_column
from features.x12 import codes
from features.x12.claims837 import BilledClaim
from features.x12.remittance835 import Payment, ProviderAdjustment, RemitClaim, Remittance

TRANSACTION_FIELDS = (
    "claim_id",
    "date",
    "type",
    "amount",
    "party",
    "carc_group",
    "carc_code",
    "rarc_code",
    "reason",
)
LEDGER_COLUMNS = ("date", "payer_id", "trace_number", "code", "description", "reference", "amount")


@dataclass
class PostingCounts:
    """What was posted, for the summary: counts and cents."""

    remittance_claims: int = 0
    service_lines: int = 0
    reversals: int = 0
    payments: int = 0
    payment_cents: int = 0
    adjustment_triplets: Counter = field(default_factory=Counter)
    adjustment_cents: Counter = field(default_factory=Counter)
    provider_adjustments: Counter = field(default_factory=Counter)
    provider_cents: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)


class Posting:
    """Posts remittances one at a time; ``transactions()`` applies the rules that need them all."""

    def __init__(self, billed: dict[str, BilledClaim], warnings: list[ImportWarning]):
        self.billed = billed
        self.warnings = warnings
        self.rows: list[tuple] = []  # one tuple per transaction, in TRANSACTION_FIELDS order
        self.counts = PostingCounts()
        self.seen: set[tuple[str, str, str]] = set()
        self.secondary_rows: list[int] = []
        self.negatives: list[tuple[str, str, int, str, str, int, RemitClaim]] = []
        self.unbilled: dict[str, tuple[RemitClaim, Payment]] = {}
        self.remitted: set[str] = set()
        self.payer_claim_numbers: dict[str, str] = {}
        self.provider: list[tuple[ProviderAdjustment, Payment]] = []
        self.ledger: list[tuple[ProviderAdjustment, Payment]] = []

    def add(
        self,
        claim_id: str,
        date: str,
        kind: str,
        cents: int,
        party: str | None = None,
        group: str | None = None,
        code: str | None = None,
        rarc: str | None = None,
        reason: str | None = None,
    ) -> int:
        """Append one transaction row (amount in cents); return its index."""
        self.rows.append((claim_id, date, kind, cents, party, group, code, rarc, reason))
        return len(self.rows) - 1

    def post(self, remittance: Remittance) -> None:
        """Post the claims and provider adjustments of one 835 transaction set."""
        payment = remittance.payment
        for claim in remittance.claims:
            key = (payment.trace_number, payment.originator, claim.key)
            if key in self.seen:
                self.counts.notes["remittance claims read twice (skipped)"] += 1
                continue
            self.seen.add(key)
            self._post_claim(claim, payment)
        for adjustment in remittance.provider_adjustments:
            key = (payment.trace_number, payment.originator, adjustment.key)
            if key in self.seen:
                self.counts.notes["provider adjustments read twice (skipped)"] += 1
                continue
            self.seen.add(key)
            self.provider.append((adjustment, payment))
            self.counts.provider_adjustments[adjustment.code] += 1
            self.counts.provider_cents[adjustment.code] += adjustment.amount

    def _post_claim(self, claim: RemitClaim, payment: Payment) -> None:
        counts = self.counts
        counts.remittance_claims += 1
        counts.service_lines += claim.lines
        for adjustment in claim.adjustments:
            counts.adjustment_triplets[adjustment.group] += 1
            counts.adjustment_cents[adjustment.group] += adjustment.amount
        if claim.status == codes.PREDETERMINATION:
            counts.notes["predeterminations (CLP02 25, no payment) skipped"] += 1
            return
        claim_id = claim.claim_id
        billed = self.billed.get(claim_id)
        if billed is None:
            self._remember(claim, payment)
        elif billed.voided:
            counts.notes["remittance claims of voided claims (CLM05-3 8) not posted"] += 1
            return
        self.remitted.add(claim_id)
        if claim.payer_claim_number:
            self.payer_claim_numbers.setdefault(claim.payer_claim_number, claim_id)
        counts.reversals += claim.status == codes.REVERSAL
        date = payment.date
        if claim.paid > 0:
            self.add(claim_id, date, "payment", claim.paid, "payer")
            counts.payments += 1
            counts.payment_cents += claim.paid
        elif claim.paid < 0:
            self.add(claim_id, date, "refund", -claim.paid, "payer")
        self._post_adjustments(claim, date)

    def _post_adjustments(self, claim: RemitClaim, date: str) -> None:
        """One row per CAS group and reason code of the claim (claim and line level summed)."""
        totals: dict[tuple[str, str], list] = {}
        for adjustment in claim.adjustments:
            entry = totals.get((adjustment.group, adjustment.code))
            if entry is None:
                totals[(adjustment.group, adjustment.code)] = [adjustment.amount, adjustment.remark]
            else:
                entry[0] += adjustment.amount
                entry[1] = entry[1] or adjustment.remark
        claim_id = claim.claim_id
        denied = claim.status in (codes.DENIED, codes.NOT_OUR_CLAIM)
        denial_posted = False
        for (group, code), (amount, remark) in totals.items():
            if amount == 0:
                continue
            if group == "PR":
                party = "patient" if amount > 0 else "payer"
                row = self.add(claim_id, date, "transfer", abs(amount), party, group, code, remark)
                if amount > 0 and claim.status in codes.SECONDARY:
                    self.secondary_rows.append(row)
            elif group == "OA" and code == codes.PRIOR_PAYER_CARC:
                self.counts.notes["OA-23 prior payer adjudications not posted again"] += 1
            elif group != "CR" and (code in codes.DENIAL_CARCS or (denied and group == "CO")):
                if amount > 0:
                    self.add(claim_id, date, "denial", amount, None, group, code, remark)
                    denial_posted = True
                else:
                    self.counts.notes["reversed denials kept as events"] += 1
            elif amount > 0:
                reason = "contractual" if group == "CO" else "other"
                stored = "OA" if group == "CR" else group
                self.add(claim_id, date, "adjustment", amount, None, stored, code, remark, reason)
            else:
                self.negatives.append((claim_id, date, len(self.rows), group, code, -amount, claim))
        if denied and not denial_posted and claim.charge > 0:
            self.add(claim_id, date, "denial", claim.charge, None, "CO", None, claim.remark)

    def _remember(self, claim: RemitClaim, payment: Payment) -> None:
        """Keep the earliest remittance of a claim no 837 billed (a reversal only if nothing
        else), to build the claim from it."""
        known = self.unbilled.get(claim.claim_id)
        rank = (claim.status == codes.REVERSAL, payment.date)
        if known is None or rank < (known[0].status == codes.REVERSAL, known[1].date):
            self.unbilled[claim.claim_id] = (claim, payment)

    def transactions(self) -> pd.DataFrame:
        """Every posted row after the rules that need all remittances: PLB refunds, secondary
        PR, negative adjustments; amounts in dollars, dates as datetime64."""
        self._post_provider_refunds()
        columns = list(zip(*self.rows, strict=True)) or [()] * len(TRANSACTION_FIELDS)
        frame = pd.DataFrame(
            {
                name: _working_column(name, values)
                for name, values in zip(TRANSACTION_FIELDS, columns, strict=True)
            }
        )
        keep = np.ones(len(frame), dtype=bool)
        keep &= ~self._secondary_already_transferred(frame)
        cents = frame["amount"].to_numpy(dtype=np.int64, copy=True)
        self._net_negative_adjustments(frame, cents)
        keep &= cents > 0
        frame["amount"] = cents
        frame = frame[keep].reset_index(drop=True)
        return to_interchange_transactions(frame)

    def _post_provider_refunds(self) -> None:
        """PLB WO with a known claim reference: a refund (or, negative, a payment) on it."""
        known = set(self.billed) | self.remitted
        ledger = []
        for adjustment, payment in self.provider:
            reference = adjustment.reference.strip()
            claim_id = reference if reference in known else None
            claim_id = claim_id or self.payer_claim_numbers.get(reference)
            if adjustment.code == codes.OVERPAYMENT_RECOVERY and claim_id and adjustment.amount:
                kind = "refund" if adjustment.amount > 0 else "payment"
                self.add(claim_id, payment.date, kind, abs(adjustment.amount), "payer")
                self.counts.notes["PLB WO overpayment recoveries posted as refunds"] += 1
                continue
            if adjustment.code == codes.OVERPAYMENT_RECOVERY and reference:
                self.warnings.append(
                    ImportWarning(
                        "plb_unknown_claim",
                        adjustment.location,
                        "PLB WO names a claim that no 837 or 835 holds: kept in the provider "
                        "ledger",
                    )
                )
            ledger.append((adjustment, payment))
        self.ledger = ledger

    def _secondary_already_transferred(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows of secondary PR whose claim had a share moved to the patient on or before."""
        drop = np.zeros(len(frame), dtype=bool)
        if not self.secondary_rows:
            return drop
        secondary = np.zeros(len(frame), dtype=bool)
        secondary[self.secondary_rows] = True
        to_patient = (frame["type"] == "transfer").to_numpy() & (
            frame["party"] == "patient"
        ).to_numpy()
        first = frame[to_patient & ~secondary].groupby("claim_id")["date"].min()
        rows = np.flatnonzero(secondary)
        earlier = first.reindex(frame["claim_id"].to_numpy()[rows]).to_numpy(dtype=object)
        dates = frame["date"].to_numpy()[rows]
        covered = np.array(
            [isinstance(e, str) and e <= d for e, d in zip(earlier, dates, strict=True)],
            dtype=bool,
        )
        drop[rows[covered]] = True
        if covered.any():
            self.counts.notes["secondary PR already moved to the patient, not posted again"] += int(
                covered.sum()
            )
        return drop

    def _net_negative_adjustments(self, frame: pd.DataFrame, cents: np.ndarray) -> None:
        """Lower earlier adjustments of the same claim, group and code by each negative total."""
        if not self.negatives:
            return
        affected = {negative[0] for negative in self.negatives}
        candidates = np.flatnonzero(
            (frame["type"] == "adjustment").to_numpy() & frame["claim_id"].isin(affected).to_numpy()
        )
        by_claim: dict[str, list[int]] = {}
        for row in candidates:
            by_claim.setdefault(frame.at[row, "claim_id"], []).append(int(row))
        dates = frame["date"].to_numpy()
        for claim_id, date, posted, group, code, amount, claim in sorted(
            self.negatives, key=lambda negative: negative[1:3]
        ):
            left = amount
            earlier = [
                row
                for row in by_claim.get(claim_id, [])
                if (dates[row], row) < (date, posted)
                and (group == "CR" or frame.at[row, "carc_group"] == group)
                and frame.at[row, "carc_code"] == code
            ]
            for row in sorted(earlier, key=lambda r: (dates[r], r), reverse=True):
                taken = min(left, int(cents[row]))
                cents[row] -= taken
                left -= taken
            self.counts.notes["negative adjustments netted against earlier ones"] += 1
            if left:
                self.warnings.append(
                    ImportWarning(
                        "negative_adjustment_unmatched",
                        claim.location,
                        f"a negative {group}-{code} of {left / 100:,.2f} finds no earlier "
                        "adjustment of that code on the claim to lower: not posted",
                        claim_id,
                    )
                )

    def ledger_frame(self) -> pd.DataFrame:
        """The provider-level adjustments that are not a claim's: one row per PLB pair."""
        rows = [
            (
                payment.date,
                payment.payer_id,
                payment.trace_number,
                adjustment.code,
                codes.PLB_REASONS.get(adjustment.code, ""),
                adjustment.reference,
                adjustment.amount,
            )
            for adjustment, payment in self.ledger
        ]
        frame = pd.DataFrame(rows, columns=list(LEDGER_COLUMNS))
        frame["date"] = dates_of(frame["date"])
        frame["amount"] = frame["amount"].astype("int64") / 100
        for name in ("payer_id", "trace_number", "code", "description", "reference"):
            frame[name] = text_column(frame[name].tolist())
        return frame


def _working_column(name: str, values: tuple) -> pd.Series:
    """Cents as int64, CCYYMMDD dates as plain objects (compared as text), the rest as text."""
    if name == "amount":
        return pd.Series(np.array(values, dtype=np.int64))
    if name == "date":
        return pd.Series(np.array(values, dtype=object), dtype=object)
    return text_column(values)


def to_interchange_transactions(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with cents and CCYYMMDD dates as the interchange format's transactions table."""
    frame["date"] = dates_of(frame["date"])
    frame["amount"] = frame["amount"].to_numpy(dtype=np.int64) / 100
    return frame
