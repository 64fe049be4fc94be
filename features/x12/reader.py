"""Read 837 and 835 files into a history in the interchange format: ``read_x12``.

Claims come from the 837s (all of them first, so every remittance finds its claim); the 835s
are then posted in the order given (``features.x12.posting`` holds the rules). A remittance
whose claim is in no 837 still becomes a claim, built from what the 835 says (CLP01, CLP03,
DTM*232/233 or the line dates, DTM*050, N1*PR, CLP06, CLP08), marked ``source = 835``, with a
warning. Pure: files in, frames out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.errors import ArscoreError
from features.importing import ImportWarning, dates_of, text_column
from features.schema import CLAIM_COLUMNS, column_names
from features.x12 import codes
from features.x12.claims837 import BilledClaim, ClaimReader, merge_claims
from features.x12.envelope import TransactionSet, read_text, read_transaction_sets
from features.x12.errors import X12Error
from features.x12.posting import Posting, PostingCounts
from features.x12.remittance835 import Payment, RemitClaim, RemittanceReader
from features.x12.values import Dates

SUFFIXES = (".x12", ".edi", ".txt", ".835", ".837")
SOURCE_COLUMN = "source"  # extra claims column: 837, or 835 for a claim built from remittances


@dataclass
class ImportSummary:
    """What an import read and posted, for the end-of-run summary."""

    files: int = 0
    bytes: int = 0
    segments: int = 0
    interchanges: int = 0
    transaction_sets: Counter = field(default_factory=Counter)
    claims: int = 0
    claims_from_remittances: int = 0
    voided_claims: int = 0
    billed_service_lines: int = 0
    posting: PostingCounts = field(default_factory=PostingCounts)
    warnings: Counter = field(default_factory=Counter)


@dataclass
class X12Import:
    """A history read from X12: claims (raw ``patient_id``, plus ``source``), transactions,
    the provider ledger (PLB adjustments that are no claim's), warnings and the summary."""

    claims: pd.DataFrame
    transactions: pd.DataFrame
    provider_ledger: pd.DataFrame
    warnings: list[ImportWarning]
    summary: ImportSummary


def x12_files(paths: Sequence[Path]) -> list[Path]:
    """The X12 files of files and folders (folders searched recursively, in name order)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and _accepted(p))
            if not inside:
                raise ArscoreError(f"{path}: no X12 files ({', '.join(SUFFIXES)}, or gzipped)")
            found += inside
        elif path.is_file():
            if not _accepted(path):
                raise ArscoreError(f"{path}: expected a {', '.join(SUFFIXES)} file (or gzipped)")
            found.append(path)
        else:
            raise ArscoreError(f"{path}: no such file or folder")
    return list(dict.fromkeys(found))


def _accepted(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return name.endswith(SUFFIXES)


def read_x12(
    claim_paths: Sequence[Path],
    remit_paths: Sequence[Path],
    progress: Callable[[int], None] | None = None,
) -> X12Import:
    """Read 837 claim files and 835 remittance files into the interchange format's tables.

    ``progress`` is called with the bytes of each file once it is read.
    """
    claim_files, remit_files = x12_files(claim_paths), x12_files(remit_paths)
    warnings: list[ImportWarning] = []
    summary = ImportSummary()
    dates = Dates()
    claim_reader = ClaimReader(dates, warnings)
    billed_list: list[BilledClaim] = []
    for transaction in _transaction_sets(claim_files, "837", warnings, summary, progress):
        billed_list += claim_reader.read(transaction)
    billed = merge_claims(billed_list)
    posting = Posting(billed, warnings)
    remit_reader = RemittanceReader(dates, warnings)
    for transaction in _transaction_sets(remit_files, "835", warnings, summary, progress):
        posting.post(remit_reader.read(transaction))
    transactions = posting.transactions()
    built = [
        claim_from_remittance(claim, payment, warnings)
        for claim, payment in posting.unbilled.values()
    ]
    kept = [claim for claim in billed.values() if not claim.voided]
    summary.claims = len(kept)
    summary.voided_claims = len(billed) - len(kept)
    summary.claims_from_remittances = len(built)
    summary.billed_service_lines = claim_reader.lines
    summary.posting = posting.counts
    summary.warnings = Counter(warning.kind for warning in warnings)
    claims = claims_frame(kept + built, ["837"] * len(kept) + ["835"] * len(built))
    known = pc.is_in(
        pa.array(transactions["claim_id"].to_numpy(dtype=object), type=pa.string()),
        value_set=pa.array(claims["claim_id"].to_numpy(dtype=object), type=pa.string()),
    )
    transactions = transactions[known.to_numpy(zero_copy_only=False)]
    transactions = transactions.sort_values(["date", "claim_id"], kind="stable", ignore_index=True)
    return X12Import(claims, transactions, posting.ledger_frame(), warnings, summary)


def _transaction_sets(
    files: list[Path],
    kind: str,
    warnings: list[ImportWarning],
    summary: ImportSummary,
    progress: Callable[[int], None] | None,
) -> Iterator[TransactionSet]:
    """The transaction sets of ``kind`` in the files; another claim or remittance kind is an
    error, any other kind (acknowledgments, claim status) is skipped with a warning."""
    option = "--claims" if kind == "837" else "--remits"
    other = "835" if kind == "837" else "837"
    tally: Counter = Counter()
    for path in files:
        text = read_text(path)
        for transaction in read_transaction_sets(path, warnings, text, tally):
            summary.transaction_sets[transaction.kind] += 1
            if transaction.kind == kind:
                yield transaction
            elif transaction.kind == other:
                raise X12Error(
                    transaction.location(0),
                    f"an {other} in a file given with {option}: give 837 claim files with "
                    "--claims and 835 remittance files with --remits",
                )
            else:
                warnings.append(
                    ImportWarning(
                        "other_transaction_set",
                        transaction.location(0),
                        f"transaction set {transaction.kind!r} is neither 837 nor 835: skipped",
                    )
                )
        summary.files += 1
        summary.bytes += len(text)
        if progress is not None:
            progress(path.stat().st_size)
    summary.interchanges += tally["interchanges"]
    summary.segments += tally["segments"]


def claim_from_remittance(
    claim: RemitClaim, payment: Payment, warnings: list[ImportWarning]
) -> BilledClaim:
    """A claim record built from a remittance, for a claim no 837 holds (with a warning)."""
    service = claim.statement_end or claim.line_end
    note = ""
    if not service:
        service = claim.received or payment.date
        note = " (no service date in the 835: the claim received or payment date stands in)"
    institutional = claim.institutional
    if institutional:
        place = codes.institutional_place_of_service(
            claim.facility, claim.emergency, claim.off_campus
        )
    else:
        place = claim.facility or None
    if place is None:
        place = codes.UNKNOWN_PLACE_OF_SERVICE
        note += f" (CLP08 {claim.facility!r} gives no place of service: {place})"
    warnings.append(
        ImportWarning(
            "claim_from_remittance",
            claim.location,
            "the claim is in none of the 837s: built from the remittance" + note,
            claim.claim_id,
        )
    )
    return BilledClaim(
        claim_id=claim.claim_id,
        patient_id=claim.record_id
        or claim.patient_id
        or claim.insured_id
        or f"claim:{claim.claim_id}",
        payer_id=payment.payer_id,
        payer_type=codes.payer_type(claim.filing),
        claim_type="institutional" if institutional else "professional",
        place_of_service=place,
        service_date=service,
        billed_date=claim.received or service,
        total_charge=abs(claim.charge),
        expected_amount=None,
        patient_age=None,
        patient_state=None,
        patient_zip3=None,
        frequency="1",
        origin=claim.origin,
        index=claim.index,
        first_billed_date=claim.received or service,
    )


def claims_frame(records: list[BilledClaim], sources: list[str]) -> pd.DataFrame:
    """The claims table of the interchange format (raw ``patient_id``) with ``source``."""

    def text(name: str) -> pd.Series:
        return text_column([getattr(r, name) for r in records])

    def money(name: str) -> np.ndarray:
        values = [getattr(r, name) for r in records]
        return np.array([np.nan if v is None else v / 100 for v in values], dtype="float64")

    frame = pd.DataFrame(
        {
            "claim_id": text("claim_id"),
            "patient_id": text("patient_id"),
            "payer_id": text("payer_id"),
            "payer_type": text("payer_type"),
            "claim_type": text("claim_type"),
            "place_of_service": text("place_of_service"),
            "service_date": dates_of([r.service_date for r in records]),
            "billed_date": dates_of([r.first_billed_date or r.billed_date for r in records]),
            "total_charge": money("total_charge"),
            "expected_amount": money("expected_amount"),
            "patient_age": pd.array([r.patient_age for r in records], dtype="Int64"),
            "patient_state": text("patient_state"),
            "patient_zip3": text("patient_zip3"),
            SOURCE_COLUMN: text_column(sources),
        }
    )
    return frame[[*column_names(CLAIM_COLUMNS), SOURCE_COLUMN]]
