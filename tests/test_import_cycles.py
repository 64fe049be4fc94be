"""The import-cycle check that `make lint` runs (scripts/check_import_cycles.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import grimp

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_import_cycles.py"


def _checker():
    spec = importlib.util.spec_from_file_location("check_import_cycles", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package(root: Path, name: str, modules: dict[str, str]) -> None:
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module, source in modules.items():
        (package / f"{module}.py").write_text(source)


def test_strongly_connected_cycle_through_three_modules_found(tmp_path, monkeypatch):
    _package(
        tmp_path,
        "cyclepkg",
        {
            "a": "from cyclepkg import b\n",
            "b": "def f():\n    from cyclepkg import c\n",  # inside a function: counts too
            "c": "import cyclepkg.a\n",
            "d": "from cyclepkg import a\n",  # imports the circle, is not part of it
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("cyclepkg", include_external_packages=False)

    groups = _checker().strongly_connected(graph)

    assert groups == [["cyclepkg.a", "cyclepkg.b", "cyclepkg.c"]]


def test_strongly_connected_layered_package_no_cycle(tmp_path, monkeypatch):
    _package(
        tmp_path,
        "layeredpkg",
        {
            "low": "X = 1\n",
            "mid": "from layeredpkg.low import X\n",
            "top": "import layeredpkg.mid\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("layeredpkg", include_external_packages=False)

    assert _checker().strongly_connected(graph) == []


def test_check_import_cycles_on_this_repository_passes():
    result = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, cwd=SCRIPT.parents[1]
    )
    assert result.returncode == 0, result.stdout
    assert "no import cycles" in result.stdout
