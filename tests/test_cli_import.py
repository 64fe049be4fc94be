"""`arscore generate --x12` and `arscore import` end to end, and bad input that writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from arscore.cli import app
from features.history import read_history
from tests.factories import TEST_KEY
from tests.features.test_fhir import COVERAGE, INSURER, MEDICARE, PAID, PATIENT, _bundle
from tests.test_cli import REPO, run_cli

EVENTS = "patient_events.csv"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """`arscore generate --claims 1500 --x12 DIR` (no --out)."""
    folder = tmp_path_factory.mktemp("cli-x12") / "x12"
    result = run_cli("generate", "--claims", "1500", "--seed", "4", "--x12", str(folder), cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "837 files" in result.stdout and "patient events" in result.stdout
    return folder


def test_cli_import_x12_writes_a_history_every_command_reads(exported, tmp_path):
    out = tmp_path / "history"
    result = run_cli(
        "import", "x12",
        "--claims", str(exported / "837"),
        "--remits", str(exported / "835"),
        "--patient-events", str(exported / EVENTS),
        "--out", str(out),
        "--format", "csv",
        cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    history = read_history(out, TEST_KEY)
    assert len(history.claims) == 1500
    assert set(history.claims["source"]) == {"837"}
    events = pd.read_csv(exported / EVENTS)
    assert len(history.transactions) > len(events) > 0
    assert "claims: 1,500 from 837s, 0 built from remittances" in result.stdout
    assert "segments/s" in result.stdout and "warnings: none" in result.stdout
    assert (out / "provider_ledger.csv").exists() and (out / "import_warnings.csv").exists()
    raw_ids = set(pd.read_csv(out / "claims.csv")["patient_id"])
    assert not raw_ids & set(history.claims["patient_key"])  # pseudonymized on read


def test_cli_import_x12_truncated_remittance_writes_nothing(exported, tmp_path):
    remits = tmp_path / "835"
    remits.mkdir()
    first = sorted((exported / "835").iterdir())[0]
    text = first.read_text()
    (remits / first.name).write_text(text[: len(text) // 2])
    out = tmp_path / "history"
    result = run_cli("import", "x12", "--remits", str(remits), "--out", str(out), cwd=REPO)
    assert result.returncode == 2
    assert f"{first.name}, interchange " in result.stderr and "truncated file" in result.stderr
    assert "transaction set" in result.stderr and "segment " in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_cli_import_x12_patient_event_of_an_unknown_claim_names_file_and_row(exported, tmp_path):
    events = pd.read_csv(exported / EVENTS, dtype=str)
    events.loc[2, "claim_id"] = "NOT-BILLED"
    broken = tmp_path / EVENTS
    events.to_csv(broken, index=False)
    out = tmp_path / "history"
    result = run_cli(
        "import", "x12",
        "--claims", str(exported / "837"),
        "--remits", str(exported / "835"),
        "--patient-events", str(broken),
        "--out", str(out),
        cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{broken}: column 'claim_id', row 3: expected a claim_id of a claim" in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_cli_import_fhir_writes_a_history(tmp_path):
    bundle = tmp_path / "eob.json"
    bundle.write_text(json.dumps(_bundle(PATIENT, COVERAGE, MEDICARE, INSURER, PAID)))
    out = tmp_path / "history"
    result = run_cli("import", "fhir", "--eob", str(bundle), "--out", str(out), cwd=REPO)
    assert result.returncode == 0, result.stderr
    history = read_history(out, TEST_KEY)
    assert list(history.claims["claim_id"]) == ["CLAIM-1"]
    assert sorted(history.transactions["type"]) == ["adjustment", "payment", *["transfer"] * 3]
    assert "1 ExplanationOfBenefit" in result.stdout


def test_cli_generate_needs_out_or_x12_and_import_has_help(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["generate", "--claims", "10"])
    assert result.exit_code == 2 and "give --out, --x12 or both" in result.output
    top = runner.invoke(app, ["import", "--help"])
    assert top.exit_code == 0 and "x12" in top.output and "fhir" in top.output
