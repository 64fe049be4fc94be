"""The command line end to end: generate, dataset, and clear errors that write nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from features.schema import CLAIM_COLUMNS, TRANSACTION_COLUMNS

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path, env_key: str = "k" * 32) -> subprocess.CompletedProcess:
    """Run `arscore ARGS` in a subprocess the way a user would."""
    env = {"ARSCORE_PSEUDONYM_KEY": env_key, "PATH": str(Path(sys.executable).parent)}
    return subprocess.run(
        [sys.executable, "-m", "arscore.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "history"
    result = run_cli(
        "generate",
        "--claims",
        "2000",
        "--seed",
        "3",
        "--out",
        str(out),
        "--format",
        "csv",
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    return out


def test_cli_generate_writes_both_tables_with_schema_columns(generated):
    claims = pd.read_csv(generated / "claims.csv")
    transactions = pd.read_csv(generated / "transactions.csv")
    assert len(claims) == 2000
    assert list(claims.columns) == [c.name for c in CLAIM_COLUMNS]
    assert list(transactions.columns) == [c.name for c in TRANSACTION_COLUMNS]


def test_cli_dataset_writes_snapshots_without_patient_id(generated, tmp_path):
    out = tmp_path / "dataset.parquet"
    result = run_cli("dataset", "--history", str(generated), "--out", str(out), cwd=REPO)
    assert result.returncode == 0, result.stderr
    snapshots = pd.read_parquet(out)
    assert len(snapshots) > 1000
    assert "patient_id" not in snapshots.columns
    raw_ids = set(pd.read_csv(generated / "claims.csv")["patient_id"])
    assert not raw_ids & set(snapshots["patient_key"])
    assert "snapshots" in result.stdout


def test_cli_dataset_bad_input_names_row_and_writes_nothing(generated, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    claims = pd.read_csv(generated / "claims.csv", dtype=str)
    claims.loc[4, "payer_type"] = "medicare_part_z"
    claims.to_csv(broken / "claims.csv", index=False)
    (broken / "transactions.csv").write_text((generated / "transactions.csv").read_text())
    out = tmp_path / "dataset.parquet"
    result = run_cli("dataset", "--history", str(broken), "--out", str(out), cwd=REPO)
    assert result.returncode == 2
    assert "column 'payer_type', row 5: expected one of commercial" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and list(tmp_path.glob("*.tmp")) == []


def test_cli_every_subcommand_has_help():
    top = run_cli("--help", cwd=REPO)
    assert top.returncode == 0
    commands = (
        "generate",
        "dataset",
        "train",
        "promote",
        "models",
        "score",
        "serve",
        "load",
        "rescore",
        "writeoffs",
        "users",
        "keys",
        "audit",
    )
    for command in commands:
        assert command in top.stdout
        assert run_cli(command, "--help", cwd=REPO).returncode == 0


def test_cli_bad_option_value_is_a_usage_error(tmp_path):
    result = run_cli("generate", "--claims", "0", "--out", str(tmp_path), cwd=REPO)
    assert result.returncode == 2
    assert "--claims" in result.stderr


def test_readme_format_tables_match_the_schema():
    readme = (REPO / "README.md").read_text()
    for column in (*CLAIM_COLUMNS, *TRANSACTION_COLUMNS):
        assert f"| `{column.name}` |" in readme, column.name
        for level in column.levels:
            assert f"`{level}`" in readme, level
