"""Reading FHIR files: one resource, a Bundle, or NDJSON; where a resource stands; values.

Money is read as Decimal (never a float) and kept in whole cents; dates become CCYYMMDD.
"""

from __future__ import annotations

import datetime
import gzip
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from features.errors import ArscoreError

SUFFIXES = (".json", ".ndjson", ".jsonl")


@dataclass(frozen=True)
class FhirLocation:
    """A resource's place: the file, its line (NDJSON) or entry, and the resource's id."""

    file: str
    entry: int | None = None
    resource: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.entry is not None:
            where += f", resource {self.entry}"
        if self.resource:
            where += f" ({self.resource})"
        return where


class FhirError(ArscoreError):
    """A file or resource that cannot be read as FHIR; nothing was written."""

    def __init__(self, location: FhirLocation, message: str):
        self.location = location
        super().__init__(f"{location}: {message}")


def fhir_files(paths: Sequence[Path]) -> list[Path]:
    """The FHIR files of files and folders (.json, .ndjson, .jsonl, gzipped too)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and _accepted(p))
            if not inside:
                raise ArscoreError(f"{path}: no FHIR files ({', '.join(SUFFIXES)}, or gzipped)")
            found += inside
        elif path.is_file():
            if not _accepted(path):
                raise ArscoreError(f"{path}: expected a {', '.join(SUFFIXES)} file (or gzipped)")
            found.append(path)
        else:
            raise ArscoreError(f"{path}: no such file or folder")
    return list(dict.fromkeys(found))


def _accepted(path: Path) -> bool:
    return path.name.lower().removesuffix(".gz").endswith(SUFFIXES)


def resources(path: Path) -> Iterator[tuple[FhirLocation, dict]]:
    """Every resource of a file, Bundles opened, with where it stands."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    text = data.decode("utf-8-sig")
    try:
        documents = [(None, json.loads(text, parse_float=Decimal))]
    except json.JSONDecodeError:
        documents = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    documents.append((number, json.loads(line, parse_float=Decimal)))
                except json.JSONDecodeError as error:
                    where = FhirLocation(str(path), number)
                    raise FhirError(where, f"not JSON ({error.msg})") from None
    count = 0
    for line, document in documents:
        for resource in _opened(document):
            count += 1
            name = f"{resource.get('resourceType')}/{resource.get('id', '')}"
            yield FhirLocation(str(path), line or count, name), resource


def _opened(resource: object) -> Iterator[dict]:
    if not isinstance(resource, dict):
        return
    if resource.get("resourceType") == "Bundle":
        for entry in resource.get("entry", []):
            yield from _opened(entry.get("resource") if isinstance(entry, dict) else None)
    else:
        yield resource


def cents(amount: object, location: FhirLocation, what: str) -> int:
    value = amount.get("value") if isinstance(amount, dict) else None
    if not isinstance(value, (Decimal, int)) or isinstance(value, bool):
        raise FhirError(location, f"{what}: expected a Money value, found {value!r}")
    cents = Decimal(value) * 100
    if cents != cents.to_integral_value():
        raise FhirError(location, f"{what}: expected an amount in whole cents, found {value}")
    return int(cents)


def codings(concept: object) -> list[tuple[str, str]]:
    """(system, code) of a CodeableConcept's codings."""
    if not isinstance(concept, dict):
        return []
    return [(c.get("system", ""), str(c.get("code", ""))) for c in concept.get("coding", [])]


def fhir_date(text: object, location: FhirLocation, what: str) -> str:
    """A FHIR date or dateTime as CCYYMMDD."""
    try:
        return datetime.date.fromisoformat(str(text)[:10]).strftime("%Y%m%d")
    except ValueError:
        raise FhirError(location, f"{what}: expected a date, found {text!r}") from None
