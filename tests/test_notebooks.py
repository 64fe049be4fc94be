"""The notebooks in notebooks/ run headless, as CI runs them, and leave what their readers read.

Each notebook is executed with nbclient on a kernel spec written for this very interpreter (so
the kernel is the project's virtualenv, whatever other ``python3`` kernels the machine has), in
a temporary working directory, with MLflow pointed at a temporary SQLite registry. After the
notebook's own cells, the test appends one probe cell to the in-memory copy (never to the file)
that reports the objects the notebook left behind as JSON.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import install as install_kernelspec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from features.history import validate_history
from tests.factories import TEST_KEY
from training import registry
from training.config import load_config
from training.synthetic import GeneratorConfig, generate_history, write_history
from training.train import train

pytestmark = pytest.mark.slow

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
EVALUATION = NOTEBOOKS_DIR / "evaluation_walkthrough.ipynb"
KERNEL_NAME = "arscore-notebook-test"
CELL_TIMEOUT_SECONDS = 600
MODELS = ["lightgbm", "rule_of_thumb", "logistic_regression"]
FIGURE_CELLS = ("calibration", "capacity", "fairness", "contributions")
PROBE_MARKER = "NOTEBOOK-PROBE "
PROBE = f"""
import json as _json, os as _os, sys as _sys
_names = ("model_version", "bootstrapped", "same_test_rows", "metrics_max_difference")
_probe = {{"executable": _sys.executable, "prefix": _sys.prefix, "cwd": _os.getcwd()}}
_probe.update({{name: globals()[name] for name in _names if name in globals()}})
if "metrics" in globals():
    _probe["metrics_type"] = type(metrics).__name__
    _probe["metrics_columns"] = list(metrics.columns)
    _probe["metrics_index"] = list(metrics.index)
    _probe["metrics_missing"] = int(metrics.isna().sum().sum())
if "split_summary" in globals():
    _probe["splits"] = split_summary["split"].tolist()
    _probe["split_rows"] = split_summary["rows"].tolist()
if "capacity_table" in globals():
    _probe["capacity_models"] = list(capacity_table.index)
if "fairness" in globals():
    _probe["fairness_slices"] = sorted(set(fairness["slice_column"]))
    _probe["fairness_ratios_finite"] = bool(fairness["score_ratio_to_overall"].notna().all())
if "contributions" in globals():
    _probe["contributions"] = len(contributions)
print({PROBE_MARKER!r} + _json.dumps(_probe, default=str))
"""
# A seconds-long fit for the run the registry test trains itself: few, small trees.
TINY_OVERRIDES = {
    "lightgbm": {"num_boost_round": 20, "num_leaves": 7, "min_data_in_leaf": 20},
    "recovery": {"num_boost_round": 20, "num_leaves": 7, "min_data_in_leaf": 20},
    "calibration_folds": 3,
    "contribution_sample": 300,
}


@dataclass
class ExecutedNotebook:
    """A notebook after execution: its cells with outputs, the probe's report, any error."""

    notebook: nbformat.NotebookNode
    workdir: Path
    probe: dict
    error: CellExecutionError | None

    def cell(self, cell_id: str) -> nbformat.NotebookNode:
        return next(cell for cell in self.notebook.cells if cell.get("id") == cell_id)


@pytest.fixture(scope="module")
def kernel_manager_factory(tmp_path_factory: pytest.TempPathFactory):
    """Kernel managers on a kernel spec that launches this interpreter (the project's venv)."""
    prefix = tmp_path_factory.mktemp("jupyter-prefix")
    install_kernelspec(kernel_name=KERNEL_NAME, prefix=str(prefix))
    kernels = prefix / "share" / "jupyter" / "kernels"
    spec = json.loads((kernels / KERNEL_NAME / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable

    def make() -> KernelManager:
        specs = KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False)
        return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)

    return make


def notebook_environment(workdir: Path, **variables: str) -> dict[str, str]:
    """This process's environment with MLflow, temporary files and Jupyter state under workdir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARSCORE_", "MLFLOW_"))}
    for name in ("tmp", "ipython", "jupyter-runtime"):
        (workdir / name).mkdir(exist_ok=True)
    registry_uri = f"sqlite:///{(workdir / 'registry' / 'mlflow.db').as_posix()}"
    env |= {
        "ARSCORE_MLFLOW_TRACKING_URI": registry_uri,
        "MLFLOW_TRACKING_URI": registry_uri,
        "ARSCORE_PROMOTION_LOG": str(workdir / "registry" / "promotion_log.jsonl"),
        "TMPDIR": str(workdir / "tmp"),
        "IPYTHONDIR": str(workdir / "ipython"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "jupyter-runtime"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    return env | variables


def execute(path: Path, workdir: Path, env: dict[str, str], make_kernel) -> ExecutedNotebook:
    """Run the notebook (plus the probe cell) in workdir; errors are kept, not raised."""
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE, id="test-probe"))
    client = NotebookClient(
        notebook,
        km=make_kernel(),
        timeout=CELL_TIMEOUT_SECONDS,
        startup_timeout=120,
        resources={"metadata": {"path": str(workdir)}},
    )
    error = None
    try:
        client.execute(env=env)
    except CellExecutionError as raised:
        error = raised
    probe = {}
    for output in notebook.cells[-1].get("outputs", []):
        if output.get("name") == "stdout" and PROBE_MARKER in output["text"]:
            probe = json.loads(output["text"].split(PROBE_MARKER, 1)[1])
    return ExecutedNotebook(notebook, workdir, probe, error)


def errors_of(executed: ExecutedNotebook) -> list[str]:
    """The error outputs of every cell, as 'cell id: name: value'."""
    return [
        f"{cell.get('id')}: {output['ename']}: {output['evalue']}"
        for cell in executed.notebook.cells
        for output in cell.get("outputs", [])
        if output["output_type"] == "error"
    ]


@pytest.fixture(scope="module")
def empty_registry_runs(tmp_path_factory, kernel_manager_factory) -> dict[str, ExecutedNotebook]:
    """Every notebook executed once against an empty (not yet created) registry."""
    runs = {}
    for path in NOTEBOOKS:
        workdir = tmp_path_factory.mktemp(f"run-{path.stem}")
        runs[path.stem] = execute(
            path, workdir, notebook_environment(workdir), kernel_manager_factory
        )
    return runs


def test_notebook_discovery_in_notebooks_dir_finds_evaluation_walkthrough():
    assert EVALUATION in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_as_committed_has_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    with_outputs = [
        cell.get("id")
        for cell in notebook.cells
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert with_outputs == [], f"{path.name}: clear the outputs of cells {with_outputs}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_with_empty_registry_runs_every_cell_without_error(path, empty_registry_runs):
    executed = empty_registry_runs[path.stem]
    assert executed.error is None, str(executed.error)
    assert errors_of(executed) == []
    code_cells = [cell for cell in executed.notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code_cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_kernel_in_test_runs_this_virtualenv_in_the_temporary_workdir(
    path, empty_registry_runs
):
    executed = empty_registry_runs[path.stem]
    assert Path(executed.probe["executable"]).resolve() == Path(sys.executable).resolve()
    assert Path(executed.probe["prefix"]).resolve() == Path(sys.prefix).resolve()
    assert Path(executed.probe["cwd"]).resolve() == executed.workdir.resolve()


def test_evaluation_notebook_with_empty_registry_bootstraps_run_and_leaves_three_model_metrics(
    empty_registry_runs,
):
    probe = empty_registry_runs[EVALUATION.stem].probe
    assert probe["bootstrapped"] is True
    assert probe["model_version"] == "1"
    assert probe["same_test_rows"] is True
    assert probe["metrics_type"] == "DataFrame"
    assert probe["metrics_columns"] == MODELS
    assert {"roc_auc", "ece", "brier", "dollars_share_top20"} <= set(probe["metrics_index"])
    assert probe["metrics_missing"] == 0
    assert probe["metrics_max_difference"] < 1e-9


def test_evaluation_notebook_with_empty_registry_leaves_split_capacity_fairness_and_features(
    empty_registry_runs,
):
    probe = empty_registry_runs[EVALUATION.stem].probe
    assert probe["splits"] == ["train", "validation", "test"]
    assert all(rows > 0 for rows in probe["split_rows"])
    assert probe["capacity_models"] == [*MODELS, "perfect hindsight"]
    assert probe["fairness_slices"] == ["age_band", "payer_type", "zip3"]
    assert probe["fairness_ratios_finite"] is True
    assert probe["contributions"] > 0


def test_evaluation_notebook_check_cells_after_run_show_tables_and_figures(empty_registry_runs):
    executed = empty_registry_runs[EVALUATION.stem]
    checks = [cell for cell in executed.notebook.cells if "check" in cell.metadata.get("tags", [])]
    assert {cell.id for cell in checks} >= {"split", "metrics", *FIGURE_CELLS}
    for cell in checks:
        assert cell.outputs, f"check cell {cell.id} shows nothing"
    metrics_text = " ".join(
        output["data"].get("text/plain", "")
        for output in executed.cell("metrics").outputs
        if output["output_type"] in ("display_data", "execute_result")
    )
    assert all(model in metrics_text for model in MODELS)
    for cell_id in FIGURE_CELLS:
        kinds = [output.get("data", {}) for output in executed.cell(cell_id).outputs]
        assert any("image/png" in data for data in kinds), f"{cell_id} shows no figure"


def test_evaluation_notebook_with_champion_in_registry_evaluates_that_version(
    tmp_path, kernel_manager_factory, monkeypatch
):
    env = notebook_environment(tmp_path)
    for name in ("ARSCORE_MLFLOW_TRACKING_URI", "ARSCORE_PROMOTION_LOG"):
        monkeypatch.setenv(name, env[name])
    claims, transactions = generate_history(GeneratorConfig(n_claims=3_000, seed=5))
    write_history(claims, transactions, tmp_path / "history", "parquet")
    history = validate_history(claims, transactions, TEST_KEY)
    at = datetime(2026, 10, 1, tzinfo=UTC)
    config = load_config(overrides=TINY_OVERRIDES)
    first = train(history, config, tmp_path / "run", created_at=at)
    registry.promote(first.version, "the first model", user="test", at=at)
    # A newer version holds @challenger, so reading @champion must not mean "the latest".
    client = registry.client()
    newer = client.create_model_version("arscore", first.model_uri, run_id=first.run_id)
    client.set_registered_model_alias("arscore", registry.CHALLENGER, newer.version)

    env["ARSCORE_NOTEBOOK_HISTORY"] = str(tmp_path / "history")
    executed = execute(EVALUATION, tmp_path, env, kernel_manager_factory)

    assert executed.error is None, str(executed.error)
    assert executed.probe["bootstrapped"] is False
    assert executed.probe["model_version"] == first.version
    assert executed.probe["same_test_rows"] is True
    assert executed.probe["metrics_max_difference"] < 1e-9
