"""The shape of the package: imports go one way through the layers, files and functions stay
short enough to read, and the read-only verbs start without torch."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mlstrategy"

# Each layer may import the layers after it, never one before it. Packages on one line are
# peers: they may import each other only as the `ALLOWED` pairs say.
LAYERS = [
    {"cli"},
    {"runs"},
    {"pipeline"},
    {"models", "data", "evaluation", "reporting", "callbacks"},
    {"metrics", "io", "safety", "run_folder"},
]
ALLOWED_PEERS = {
    ("reporting", "evaluation"),  # reports render diagnoses and selections
    ("models", "callbacks"),  # gradual unfreezing is a callback a model configures
    ("models", "data"),  # input normalization is a data-layer module the models hold
    ("evaluation", "data"),
    ("metrics", "io"),
    ("safety", "io"),
}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports() -> dict[str, set[str]]:
    """``{module: mlstrategy modules it imports}``, lazy (in-function) imports included."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        graph[name] = {m for m in found if m.startswith("mlstrategy.")}
    return graph


def _layer(package: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


def test_every_package_has_a_layer():
    packages = {_package(m) for m in _imports() if m != "mlstrategy"}
    assert packages <= set().union(*LAYERS), packages - set().union(*LAYERS)


def test_imports_go_down_the_layers_never_up():
    upward = []
    for module, targets in _imports().items():
        if module == "mlstrategy":
            continue
        here = _package(module)
        for target in targets:
            there = _package(target)
            if there == here:
                continue
            if _layer(there) < _layer(here) or (
                _layer(there) == _layer(here) and (here, there) not in ALLOWED_PEERS
            ):
                upward.append(f"{module} -> {target}")
    assert not upward, "\n".join(sorted(upward))


def test_no_module_imports_the_cli():
    graph = _imports()
    outside = {m: ts for m, ts in graph.items() if not m.startswith("mlstrategy.cli")}
    assert not [m for m, ts in outside.items() if any(t.startswith("mlstrategy.cli") for t in ts)]


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function without its docstring."""
    lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        lines -= body[0].end_lineno - body[0].lineno + 1  # type: ignore[operator]
    return lines


def test_files_and_functions_stay_short():
    long_files, long_functions = [], []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 500:
            long_files.append(f"{path.relative_to(SRC)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _code_lines(node) > 80:
                long_functions.append(f"{path.relative_to(SRC)}:{node.name}: {_code_lines(node)}")
    assert not long_files, long_files
    assert not long_functions, long_functions


RUN_FOLDER_FILES = ("metrics.json", "diagnosis.json", "report.md", "FAILED", "best.ckpt")


def test_one_module_spells_the_run_folder_file_names():
    spelled = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if any(
            f'"{name}"' in p.read_text() for name in ("metrics.json", "diagnosis.json", "FAILED")
        )
    ]
    assert spelled == ["run_folder.py"]


@pytest.mark.parametrize("verb", ["--help", "diagnose", "compare"])
def test_read_only_verbs_start_without_torch(tmp_path, verb):
    run = tmp_path / "logs" / "r" / "20250101-000000"
    run.mkdir(parents=True)
    row = {"n": 10, "error": 0.1, "accuracy": 0.9, "precision": 0.9, "recall": 0.9, "f1": 0.9}
    row["loss"] = 0.3
    metrics = {"recipe": "r.yaml", "params": 3, "splits": {"train": row, "dev": row}}
    (run / "metrics.json").write_text(json.dumps({**metrics, "splits": {**metrics["splits"]}}))
    args = [] if verb == "--help" else [str(run)]
    code = (
        "import sys; from mlstrategy.cli import main; "
        f"code = main({[verb, *args]!r}); "
        "heavy = [m for m in ('torch', 'lightning', 'torchmetrics') if m in sys.modules]; "
        "print('HEAVY', heavy); sys.exit(code)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
