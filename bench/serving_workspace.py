"""The serving benchmarks' workspace: a model built the way `make demo` builds it, in a directory
of its own, a scorer key, and request bodies of open balances (used by bench_serving.py and
bench_score_request.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

BIN = Path(sys.executable).parent
DEMO_CLAIMS, DEMO_SEED = 20_000, 7


WORKSPACE_MARKER = "bench_workspace.json"


MODEL_URI = "models:/arscore@champion"


SINGLE_POOL = 200


BATCH_ITEMS = 1_000


SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


@dataclass(frozen=True)
class Workspace:
    """Where one bench run keeps its history, registry, audit database and request bodies."""

    root: Path

    @property
    def history(self) -> Path:
        return self.root / "history"

    @property
    def key_file(self) -> Path:
        return self.root / "var" / "secrets" / "pseudonym.key"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.root / 'var' / 'arscore.db'}"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'models' / 'mlflow.db'}"

    def env(self) -> dict[str, str]:
        """The caller's environment without ARSCORE_/MLFLOW_ settings, pointed at this workspace
        (the venv's bin first on PATH: `mlflow models serve` runs `uvicorn` from PATH)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ARSCORE_", "MLFLOW_"))}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        env["ARSCORE_PSEUDONYM_KEY_FILE"] = str(self.key_file)
        env["ARSCORE_DATABASE_URL"] = self.database_url
        env["ARSCORE_MLFLOW_TRACKING_URI"] = self.tracking_uri
        env["MLFLOW_TRACKING_URI"] = env["MLFLOW_REGISTRY_URI"] = self.tracking_uri
        return env


def run_cli(workspace: Workspace, *args: str) -> str:
    """Run a command in the workspace (its directory is the current one); its stdout, or exit."""
    result = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=workspace.root,
        env=workspace.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        sys.exit(f"`{' '.join(args)}` failed with exit code {result.returncode}:\n{tail}")
    return result.stdout


def build_workspace(workspace: Workspace) -> None:
    """The model `make demo` builds: the same commands, inside the workspace."""
    workspace.key_file.parent.mkdir(parents=True, exist_ok=True)
    workspace.key_file.write_text(secrets.token_hex(32))
    workspace.key_file.chmod(0o600)
    steps = [
        ("generate", "--claims", str(DEMO_CLAIMS), "--seed", str(DEMO_SEED), "--out", "history"),
        ("dataset", "--history", "history", "--out", "dataset.parquet"),
        ("train", "--snapshots", "dataset.parquet"),
        ("promote", "challenger", "--reason", "bench_serving: the make demo model"),
        ("load", "--history", "history"),
    ]
    for step in steps:
        started = time.perf_counter()
        run_cli(workspace, "arscore", *step)
        print(f"  arscore {step[0]:9s} {time.perf_counter() - started:6.1f} s", flush=True)
    marker = {"claims": DEMO_CLAIMS, "seed": DEMO_SEED, "built_at": dt.datetime.now().isoformat()}
    (workspace.root / WORKSPACE_MARKER).write_text(json.dumps(marker))


def scorer_token(workspace: Workspace) -> str:
    """A new scorer API key's token (`arscore keys create`, as scripts/demo_serve.sh does)."""
    command = ("keys", "create", "--system", "bench", "--role", "scorer", "--label", "bench")
    output = run_cli(workspace, "arscore", *command)
    return next(line.split()[1] for line in output.splitlines() if line.startswith("token:"))


def open_balances(workspace: Workspace) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Snapshot rows of every open balance as of the history's last day, and that day."""
    from features.history import read_history
    from features.snapshots import build_snapshots

    history = read_history(workspace.history, workspace.key_file.read_bytes().strip())
    as_of = pd.Timestamp(history.transactions["date"].max()).normalize()
    rows = build_snapshots(history, [as_of], labels=None)
    return rows.sample(frac=1.0, random_state=DEMO_SEED).reset_index(drop=True), as_of


def _json_value(value: object) -> object:
    """A history value as JSON: dates ISO, numbers as numbers, missing values left out."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, float):
        return round(value, 2)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _numpy_item(value: object) -> object:
    """A numpy scalar as the Python value json writes exactly (floats round-trip in full)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def score_items(history_dir: Path, claim_ids: list[str], as_of: pd.Timestamp) -> list[dict]:
    """POST /v1/scores items: each claim as exported (raw patient_id, pseudonymized by the
    server) with its transactions up to the as-of date."""
    from features.history import find_table, read_raw

    claims = read_raw(find_table(history_dir, "claims")).set_index("claim_id", drop=False)
    transactions = read_raw(find_table(history_dir, "transactions"))
    transactions = transactions[transactions["claim_id"].isin(claim_ids)]
    transactions = transactions[pd.to_datetime(transactions["date"]) <= as_of]
    by_claim = {k: g.drop(columns="claim_id") for k, g in transactions.groupby("claim_id")}
    items = []
    for claim_id in claim_ids:
        item = {k: _json_value(v) for k, v in claims.loc[claim_id].items()}
        events = by_claim.get(claim_id, transactions.iloc[:0])
        item["transactions"] = [
            {k: v for k, v in ((k, _json_value(v)) for k, v in row.items()) if v is not None}
            for row in events.to_dict("records")
        ]
        items.append({k: v for k, v in item.items() if v is not None})
    return items


@dataclass(frozen=True)
class Bodies:
    """Request body files (one JSON body a line) and the claims each body holds."""

    arscore_single: Path
    arscore_batch: Path
    arscore_batch_reasons: Path
    mlflow_single: Path
    mlflow_batch: Path
    batch_items: int


def write_bodies(workspace: Workspace, input_columns: list[str]) -> Bodies:
    """The single-claim pool and the 1,000-claim batches, for both servers, on the same claims
    (as many distinct batches as there are open balances, at least one)."""
    rows, as_of = open_balances(workspace)
    n_batches = max(1, len(rows) // BATCH_ITEMS)
    batch_items = min(BATCH_ITEMS, len(rows))
    wanted = rows.iloc[: max(n_batches * batch_items, SINGLE_POOL)]
    items = score_items(workspace.history, wanted["claim_id"].astype(str).tolist(), as_of)
    model_input = wanted[input_columns].astype(object)
    model_rows = model_input.where(model_input.notna(), None).to_numpy().tolist()
    directory = workspace.root / "bodies"
    directory.mkdir(exist_ok=True)
    iso = as_of.date().isoformat()

    def write(name: str, bodies: list[dict]) -> Path:
        path = directory / f"{name}.jsonl"
        lines = (json.dumps(b, separators=(",", ":"), default=_numpy_item) + "\n" for b in bodies)
        path.write_text("".join(lines))
        return path

    def scores(first: int, n: int, reasons: bool) -> dict:
        return {"as_of": iso, "reasons": reasons, "items": items[first : first + n]}

    def frame(first: int, n: int) -> dict:
        return {
            "dataframe_split": {"columns": input_columns, "data": model_rows[first : first + n]}
        }

    starts = [i * batch_items for i in range(n_batches)]
    bodies = Bodies(
        arscore_single=write("arscore_single", [scores(i, 1, True) for i in range(SINGLE_POOL)]),
        arscore_batch=write("arscore_batch", [scores(i, batch_items, False) for i in starts]),
        arscore_batch_reasons=write(
            "arscore_batch_reasons", [scores(i, batch_items, True) for i in starts]
        ),
        mlflow_single=write("mlflow_single", [frame(i, 1) for i in range(SINGLE_POOL)]),
        mlflow_batch=write("mlflow_batch", [frame(i, batch_items) for i in starts]),
        batch_items=batch_items,
    )
    print(
        f"request bodies: {len(rows):,} open balances as of {iso}; {SINGLE_POOL} single-claim "
        f"bodies, {n_batches} distinct {batch_items:,}-claim batches; "
        f"{bodies.arscore_batch.stat().st_size / n_batches / 2**20:.1f} MiB per arscore batch, "
        f"{bodies.mlflow_batch.stat().st_size / n_batches / 2**20:.1f} MiB per mlflow batch"
    )
    return bodies


def audit_count(workspace: Workspace) -> int:
    """Records in the audit trail (read-only connection)."""
    path = workspace.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        return connection.execute("SELECT count(*) FROM audit_records").fetchone()[0]


def audit_durability(workspace: Workspace) -> str:
    """The journal and synchronous modes of a connection made by serving.store.engine.make_engine,
    the engine factory the server uses for its audit store (the modes are set on every
    connection)."""
    from sqlalchemy import text

    from serving.store.engine import make_engine

    engine = make_engine(workspace.database_url)
    try:
        with engine.connect() as connection:
            journal = connection.execute(text("PRAGMA journal_mode")).scalar()
            synchronous = connection.execute(text("PRAGMA synchronous")).scalar()
    finally:
        engine.dispose()
    return f"journal_mode={journal}, synchronous={SYNCHRONOUS.get(synchronous, synchronous)}"


def model_summary(workspace: Workspace) -> tuple[str, list[str]]:
    """The champion's size (trees, leaves, features) and its input columns."""
    from serving.scoring.loader import load_model

    loaded = load_model(MODEL_URI, workspace.tracking_uri, now=dt.datetime.now(dt.UTC))
    model = loaded.model

    def size(booster: object) -> str:
        trees = booster.dump_model()["tree_info"]
        leaves = max(tree["num_leaves"] for tree in trees)
        return f"{len(trees)} trees (up to {leaves} leaves)"

    summary = (
        f"model {loaded.name} version {loaded.version} ({MODEL_URI}): classifier "
        f"{size(model.booster)}, recovery {size(model.recovery_booster)}, "
        f"{len(model.pipeline.feature_names_)} features"
    )
    return summary, model.input_columns
