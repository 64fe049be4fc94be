"""Batch scoring: chunking, the atomic output file, the audit of a run, the `score` command."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from arscore.commands_batch import register
from features.errors import ArscoreError
from serving.audit.store import AuditStore
from serving.audit.tables import audit_records
from serving.batch.audit import BATCH_RUN_KIND
from serving.batch.files import (
    AtomicParquetWriter,
    file_sha256,
    output_schema,
    read_snapshot_chunks,
    split_rows,
    write_scored,
)
from serving.batch.parallel import pipelined, score_chunks, score_history
from serving.batch.scorer import ChunkScorer, PolicyActions
from serving.policy.config import load_policy
from serving.policy.facts import policy_columns
from serving.policy.rules import ACTIONS
from serving.scoring.risk_bands import risk_band
from serving.settings import get_settings
from serving.store.engine import make_engine
from tests.factories import TEST_KEY
from tests.model_factory import AS_OF, open_balances, small_history, small_model
from training.synthetic import GeneratorConfig, generate_history, write_history

CLI_SNIPPET = (
    "import sys, typer; from arscore.commands_batch import register; "
    "app = typer.Typer(); register(app); app.command('noop')(lambda: None); app()"
)


def make_scorer(**changes: object) -> ChunkScorer:
    model = small_model()
    scorer = ChunkScorer(
        model=model,
        model_version="7",
        actions=PolicyActions(load_policy()),
        policy_columns=policy_columns(),
    )
    for name, value in changes.items():
        setattr(scorer, name, value)
    return scorer


@pytest.fixture(scope="module")
def balances() -> pd.DataFrame:
    return open_balances(small_history())


@pytest.fixture
def snapshot_file(tmp_path: Path, balances: pd.DataFrame) -> Path:
    path = tmp_path / "in" / "snapshots.parquet"
    path.parent.mkdir()
    balances.to_parquet(path, row_group_size=200)
    return path


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A Typer app with the score command, settings on a fresh SQLite audit store."""
    monkeypatch.setenv("ARSCORE_DATABASE_URL", f"sqlite:///{tmp_path}/db/arscore.db")
    monkeypatch.setenv("ARSCORE_PSEUDONYM_KEY", TEST_KEY.decode())
    get_settings.cache_clear()
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    yield app, AuditStore(make_engine(f"sqlite:///{tmp_path}/db/arscore.db"))
    get_settings.cache_clear()


def saved_model(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    if not directory.exists():
        small_model().save(directory)
    return directory


def test_risk_band_cut_points_split_the_bands():
    bands = risk_band(np.array([0.05, 0.2, 0.49, 0.5, 0.81]), (0.2, 0.5, 0.8))
    assert bands.tolist() == ["very_low", "low", "low", "medium", "high"]


def test_batch_scorer_chunked_equals_unchunked(balances: pd.DataFrame, tmp_path: Path):
    scorer = make_scorer()
    whole = write_scored([scorer.score(balances)], tmp_path / "whole.parquet")
    chunks = split_rows(balances, 37)
    chunked = write_scored(pipelined(scorer, chunks), tmp_path / "chunked.parquet")
    assert chunked.rows == whole.rows == len(balances)
    a, b = pq.read_table(whole.out), pq.read_table(chunked.out)
    assert a.column_names == b.column_names
    for name in a.column_names:
        assert a[name].to_pylist() == b[name].to_pylist(), name


def test_batch_scorer_numbers_equal_the_model_score(balances: pd.DataFrame):
    scored = make_scorer().score(balances).to_pandas()
    expected = small_model().score(balances)
    assert scored["claim_id"].tolist() == expected["claim_id"].tolist()
    np.testing.assert_array_equal(
        scored["probability_collected"], expected["probability_collected"]
    )
    np.testing.assert_array_equal(scored["expected_recovery"], expected["expected_recovery"])
    assert set(scored["action"]) <= set(ACTIONS)
    assert scored["policy_version"].unique().tolist() == [load_policy().version]
    assert scored["reasons"].isna().all()


def test_batch_scorer_with_reasons_gives_up_to_four_sentences(balances: pd.DataFrame):
    from serving.scoring.reasons import ReasonTexts

    rows = balances.iloc[:50]
    scored = make_scorer(reasons=ReasonTexts(small_model())).score(rows).to_pandas()
    counts = scored["reasons"].map(len)
    assert counts.between(1, 4).all()
    assert all(isinstance(text, str) and text for row in scored["reasons"] for text in row)


def test_score_chunks_in_two_processes_equal_one_process(balances: pd.DataFrame, tmp_path: Path):
    scorer = make_scorer()
    one = write_scored(score_chunks(scorer, split_rows(balances, 150), 1), tmp_path / "1.parquet")
    two = write_scored(score_chunks(scorer, split_rows(balances, 150), 2), tmp_path / "2.parquet")
    assert pq.read_table(two.out).equals(pq.read_table(one.out))


def test_score_history_in_processes_equals_in_process(tmp_path: Path):
    scorer, history = make_scorer(), small_history()
    tables = {jobs: score_history(scorer, history, AS_OF, 3, 200, jobs) for jobs in (1, 2)}
    one, two = (pa.concat_tables(list(t)).to_pandas() for t in tables.values())
    one, two = (frame.sort_values("claim_id", ignore_index=True) for frame in (one, two))
    pd.testing.assert_frame_equal(two, one, check_categorical=False)


@pytest.mark.parametrize("stage", ["predict", "finish"])
def test_write_scored_scorer_failing_on_chunk_three_leaves_no_output(
    balances: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
):
    scorer = make_scorer()
    calls = {"n": 0}
    original = getattr(ChunkScorer, stage)

    def failing_on_third(self: ChunkScorer, value: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise ArscoreError(f"injected failure in the {stage} of chunk 3")
        return original(self, value)

    monkeypatch.setattr(ChunkScorer, stage, failing_on_third)
    out = tmp_path / "scored.parquet"
    out.write_bytes(b"yesterday's file")
    with pytest.raises(ArscoreError, match="chunk 3"):
        write_scored(pipelined(scorer, split_rows(balances, 50)), out)
    assert calls["n"] >= 3
    assert out.read_bytes() == b"yesterday's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored.parquet"]


def test_atomic_writer_failing_before_commit_leaves_no_file(tmp_path: Path):
    out = tmp_path / "scored.parquet"

    def refuse(path: Path, sha256: str, rows: int) -> None:
        assert path.exists() and path != out and rows == 0
        raise ArscoreError("audit store unavailable")

    with pytest.raises(ArscoreError), AtomicParquetWriter(out, output_schema(), refuse):
        pass
    assert list(tmp_path.iterdir()) == []


def test_read_snapshot_chunks_missing_feature_column_names_it(tmp_path: Path, balances):
    path = tmp_path / "s.parquet"
    balances.drop(columns=["open_balance"]).to_parquet(path)
    with pytest.raises(ArscoreError, match="open_balance"):
        next(read_snapshot_chunks(path, make_scorer().input_columns))


def test_score_command_records_batch_run_with_input_and_output_hashes(
    cli_env, snapshot_file: Path, tmp_path: Path
):
    app, store = cli_env
    out = tmp_path / "out" / "scored.parquet"
    args = ["score", "--snapshots", str(snapshot_file), "--out", str(out)]
    args += ["--model", str(saved_model(tmp_path)), "--chunk-rows", "100", "--jobs", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    runs = [r for r in _records(store) if r.kind == BATCH_RUN_KIND]
    assert len(runs) == 1
    payload = runs[0].payload
    assert payload["inputs"] == {str(snapshot_file): file_sha256(snapshot_file)}
    assert payload["output_sha256"] == file_sha256(out)
    assert payload["rows"] == pq.ParquetFile(out).metadata.num_rows > 0
    assert payload["score_records"] == 0


def test_score_command_audit_rows_adds_one_score_record_per_row(
    cli_env, snapshot_file: Path, tmp_path: Path
):
    app, store = cli_env
    out = tmp_path / "scored.parquet"
    args = ["score", "--snapshots", str(snapshot_file), "--out", str(out), "--audit-rows"]
    args += ["--chunk-rows", "300", "--jobs", "2"]
    result = CliRunner().invoke(app, [*args, "--model", str(saved_model(tmp_path))])
    assert result.exit_code == 0, result.output
    records = _records(store)
    scored = pq.read_table(out).to_pandas()
    scores = [r for r in records if r.kind == "score"]
    assert [r.claim_id for r in scores] == scored["claim_id"].tolist()
    assert records[-1].kind == BATCH_RUN_KIND
    assert records[-1].payload["score_records"] == len(scored)
    assert store.verify().ok


def test_score_command_from_history_equals_model_on_snapshots(cli_env, tmp_path: Path):
    app, _ = cli_env
    claims, transactions = generate_history(GeneratorConfig(n_claims=3_000, seed=3))
    history_dir = tmp_path / "history"
    write_history(claims, transactions, history_dir, "parquet")
    out = tmp_path / "scored.parquet"
    args = ["score", "--history", str(history_dir), "--as-of", AS_OF.date().isoformat()]
    args += ["--out", str(out), "--model", str(saved_model(tmp_path))]
    result = CliRunner().invoke(app, [*args, "--claims-per-partition", "700"])
    assert result.exit_code == 0, result.output
    scored = pq.read_table(out).to_pandas().sort_values("claim_id", ignore_index=True)
    expected = small_model().score(open_balances(small_history()))
    expected = expected.sort_values("claim_id", ignore_index=True)
    assert scored["claim_id"].tolist() == expected["claim_id"].tolist()
    np.testing.assert_allclose(scored["probability_collected"], expected["probability_collected"])
    np.testing.assert_allclose(scored["expected_recovery"], expected["expected_recovery"])


def test_score_command_killed_mid_run_leaves_no_file_and_no_processes(
    snapshot_file: Path, tmp_path: Path, balances: pd.DataFrame
):
    big = tmp_path / "big.parquet"
    pd.concat([balances] * 20, ignore_index=True).to_parquet(big)
    out = tmp_path / "out" / "scored.parquet"
    command = [sys.executable, "-c", CLI_SNIPPET, "score", "--snapshots", str(big)]
    command += ["--out", str(out), "--model", str(saved_model(tmp_path)), "--reasons"]
    command += ["--chunk-rows", "200", "--jobs", "2"]
    env = {**os.environ, "ARSCORE_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    scoring_processes: list[psutil.Process] = []
    try:
        partial = _wait_for_partial_output(process, out)
        scoring_processes = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        _, alive = psutil.wait_procs(scoring_processes, timeout=15)
    finally:
        for leftover in [process, *scoring_processes]:
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                leftover.kill()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    assert partial, "the run was killed before it wrote anything"
    assert not out.exists()
    assert len(scoring_processes) >= 2 and not alive


def _wait_for_partial_output(process: subprocess.Popen, out: Path) -> list[Path]:
    """The run's temporary output once it holds a written chunk (empty if the run ended)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        partial = list(out.parent.glob(".scored.parquet.*.tmp")) if out.parent.exists() else []
        if partial and partial[0].stat().st_size > 4:
            return partial
        time.sleep(0.02)
    return []


@dataclass(frozen=True)
class StoredRecord:
    kind: str
    claim_id: str | None
    payload: dict


def _records(store: AuditStore) -> list[StoredRecord]:
    """Every record of the chain, oldest first."""
    query = sa.select(audit_records).order_by(audit_records.c.seq)
    with store.engine.connect() as connection:
        rows = connection.execute(query).all()
    return [StoredRecord(r.kind, r.claim_id, json.loads(r.payload)) for r in rows]
