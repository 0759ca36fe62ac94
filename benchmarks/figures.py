"""Measure every figure the READMEs quote and write them to benchmarks/figures.json.

`make figures` runs this, then `readme_figures.py`, which renders the marked sections of
README.md and benchmarks/README.md from the file. Each section here runs what the README
tells a user to run (`mlstrategy run ...` in a scratch folder, or a benchmark script in its
own process) and keeps the numbers the tables show. The file records the machine, the date
and the commit the figures were measured on, per section and for the whole file.

    python benchmarks/figures.py                      # everything (about 20 minutes, 2 cores)
    python benchmarks/figures.py --only mnist1d,transfer   # re-measure some sections
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "benchmarks" / "figures.json"
MLSTRATEGY = Path(sys.executable).parent / "mlstrategy"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}

Section = Callable[[Path], dict[str, Any]]


class Skipped(Exception):
    """A section this machine cannot measure (a program it needs is missing)."""


def _mlstrategy(scratch: Path, *args: str) -> str:
    """``mlstrategy ARGS`` in ``scratch`` (its logs/ go there); what it prints, also kept in
    a log file."""
    log = scratch / "mlstrategy.log"
    done = subprocess.run(
        [str(MLSTRATEGY), *args], cwd=scratch, env=ENV, capture_output=True, text=True
    )
    with log.open("a") as out:
        out.write(f"\n$ mlstrategy {' '.join(args)}\n{done.stdout}{done.stderr}")
    if done.returncode != 0:
        raise SystemExit(f"`mlstrategy {' '.join(args)}` failed; see {log}")
    return done.stdout


def _runs(scratch: Path, *parts: str) -> dict[str, Path]:
    """``{recipe name: its one run folder}`` under ``logs/<parts>``."""
    base = scratch / "logs" / Path(*parts)
    found = {}
    for metrics in sorted(base.rglob("metrics.json")):
        run_dir = metrics.parent
        found[run_dir.parent.name if run_dir.parent != base else parts[-1]] = run_dir
    return found


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _r(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(float(x), digits)


def _split_scores(run_dir: Path) -> dict[str, dict[str, float]]:
    keys = ("n", "error", "accuracy", "precision", "recall", "f1", "loss")
    splits = _json(run_dir / "metrics.json")["splits"]
    return {
        s: {k: row[k] if k == "n" else _r(row[k]) for k in keys if k in row}
        for s, row in splits.items()
    }


def _run_summary(run_dir: Path) -> dict[str, Any]:
    """The numbers a README quotes about one run."""
    metrics, diagnosis = _json(run_dir / "metrics.json"), _json(run_dir / "diagnosis.json")
    curve = metrics["cost_curve"]
    dev_costs = [row.get("cost/dev", float("inf")) for row in curve]
    best = min(range(len(curve)), key=lambda i: dev_costs[i])
    return {
        "splits": _split_scores(run_dir),
        "fit_seconds": _r(metrics["fit_seconds"], 1),
        "epochs": metrics["epochs"],
        "params": metrics["params"],
        "trainable_params": metrics["trainable_params"],
        "final_train_cost": _r(curve[-1]["cost/train"], 4),
        "best_epoch": int(curve[best]["epoch"]) + 1,
        "diagnosis": {
            k: _r(diagnosis.get(k), 6) if k != "largest" else diagnosis.get(k)
            for k in ("human_error", "avoidable_bias", "variance", "dev_overfitting", "largest")
        },
    }


def _winner(run_dirs: list[Path]) -> dict[str, Any]:
    """The study's comparison as `mlstrategy compare` makes it: winner and its value."""
    sys.path.insert(0, str(REPO / "src"))
    from mlstrategy.runs.compare import compare_runs, recorded_rules

    rules = recorded_rules(run_dirs)
    selection = compare_runs(run_dirs, rules).selection
    best = next((c for c in selection.candidates if c.name == selection.winner), None)
    return {
        "optimize": rules.optimize,
        "satisfy": list(rules.satisfy),
        "winner": selection.winner,
        "value": _r(best.values[rules.optimize], 4) if best else None,
    }


def quickstart(scratch: Path) -> dict[str, Any]:
    """`make demo`'s table and the recipe table."""
    _mlstrategy(scratch, "run", str(REPO / "recipes/quickstart.yaml"))
    _mlstrategy(scratch, "run", str(REPO / "recipes/softmax_digits.yaml"))
    return {
        "quickstart": _run_summary(_runs(scratch, "quickstart")["quickstart"]),
        "softmax_digits": _run_summary(_runs(scratch, "softmax_digits")["softmax_digits"]),
    }


def strategy(scratch: Path) -> dict[str, Any]:
    """The study that shows both verdicts on the flower data."""
    _mlstrategy(scratch, "run", str(REPO / "recipes/strategy"))
    runs = _runs(scratch, "strategy")
    return {
        "runs": {name: _run_summary(d) for name, d in runs.items()},
        "comparison": _winner(list(runs.values())),
    }


def transfer(scratch: Path) -> dict[str, Any]:
    """The transfer study, with seed 0 and with seed 1 (weights and data)."""
    out: dict[str, Any] = {}
    for seed in (0, 1):
        logs = scratch / f"seed{seed}"
        logs.mkdir()
        seeds = (f"--seed_everything={seed}", f"--data.init_args.seed={seed}")
        _mlstrategy(logs, "run", str(REPO / "recipes/transfer"), *seeds)
        out[f"seed{seed}"] = {name: _run_summary(d) for name, d in _runs(logs, "transfer").items()}
    return out


def multitask(scratch: Path) -> dict[str, Any]:
    """The multi-task study: per-task test F1 and the per-task diagnosis."""
    _mlstrategy(scratch, "run", str(REPO / "recipes/multitask"))
    out = {}
    for name, run_dir in _runs(scratch, "multitask").items():
        metrics, diagnosis = _json(run_dir / "metrics.json"), _json(run_dir / "diagnosis.json")
        tasks = metrics["splits"]["test"]["tasks"]
        out[name] = {
            "test_f1": {task: _r(row["f1"], 4) for task, row in tasks.items()},
            "mean_test_f1": _r(metrics["splits"]["test"]["f1"], 4),
            "params": metrics["params"],
            "largest_gap": {t: d["largest"] for t, d in diagnosis["tasks"].items()},
        }
    return out


def end_to_end(scratch: Path) -> dict[str, Any]:
    """End-to-end vs pipeline, with both localizers."""
    _mlstrategy(
        scratch,
        "run",
        str(REPO / "recipes/end_to_end"),
        "--study.init_args.localizers=[template, learned]",
    )
    (study,) = sorted((scratch / "logs").rglob("study.json"))
    return _json(study)


def lessons(scratch: Path) -> dict[str, Any]:
    """Every lesson study under recipes/deep/."""
    out = {}
    lessons = ("init", "regularization", "optimizers", "lr_decay", "batch_norm", "activation")
    for lesson in (*lessons, "minibatch"):
        _mlstrategy(scratch, "run", str(REPO / "recipes/deep" / lesson))
        out[lesson] = {name: _run_summary(d) for name, d in _runs(scratch, lesson).items()}
    return out


def mismatch(scratch: Path) -> dict[str, Any]:
    """The data-mismatch study: each run's five errors, the mismatch gap and its standard error."""
    began = time.perf_counter()
    _mlstrategy(scratch, "run", str(REPO / "recipes/mismatch"))
    seconds = time.perf_counter() - began
    runs = {}
    for name, run_dir in _runs(scratch, "mismatch").items():
        d = _json(run_dir / "diagnosis.json")
        sources, ses = d["sources"], d["gap_standard_errors"]
        synthesis = sources.get("synthesis") or {}
        runs[name] = {
            "target_in_train": sources["target_in_train"],
            "dev_examples": sources["splits"]["dev"]["target"],
            "synthesis": bool(synthesis),
            "pool_warning": bool(synthesis.get("warnings")),
            "errors": {
                k: _r(d.get(f"{k}_error")) for k in ("human", "train", "train_dev", "dev", "test")
            },
            "gaps": {k: _r(d.get(k)) for k in ses},
            "gap_standard_errors": {k: _r(v) for k, v in ses.items()},
            "largest": d["largest"],
            # The domain classifier of the distribution check, train against dev.
            "train_dev_auc": _r(
                ((d.get("same_distribution") or {}).get("domain") or {})
                .get("train_dev", {})
                .get("auc"),
                3,
            ),
        }
    largest = {name: r["largest"] for name, r in runs.items()}
    return {"runs": runs, "largest": largest, "seconds": round(seconds, 1), "cores": os.cpu_count()}


def mnist1d(scratch: Path) -> dict[str, Any]:
    """The three MNIST-1D recipes."""
    out = {}
    for name in ("logistic", "mlp", "cnn"):
        _mlstrategy(scratch, "run", str(REPO / f"recipes/mnist1d/{name}.yaml"))
        out[name] = _run_summary(_runs(scratch, name)[name])
    return out


def suspects(scratch: Path) -> dict[str, Any]:
    """`mlstrategy suspects` on the clean softmax_digits run: what confident learning marks."""
    _mlstrategy(scratch, "run", str(REPO / "recipes/softmax_digits.yaml"))
    began = time.perf_counter()
    _mlstrategy(scratch, "suspects", "logs/softmax_digits")
    seconds = time.perf_counter() - began
    run_dir = _runs(scratch, "softmax_digits")["softmax_digits"]
    with (run_dir / "suspect_labels.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))

    def example(split: str, index: int) -> dict[str, Any]:
        """Where the README's two examples (looked at in suspect_labels.png) rank."""
        row = next(r for r in rows if r["split"] == split and r["index"] == str(index))
        keep = ("rank", "given", "suggested", "p_given", "confident_issue")
        return {k: row[k] for k in keep}

    return {
        "seconds": round(seconds, 1),
        "ranked": len(rows),
        "marked": sum(r["confident_issue"] == "True" for r in rows),
        "examples": {"train 959": example("train", 959), "train 80": example("train", 80)},
    }


IRIS_COLUMNS = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def predict(scratch: Path) -> dict[str, Any]:
    """`mlstrategy predict` on new rows, from a run on a user's iris CSV with string labels."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    names = iris.target_names
    with (scratch / "iris.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow([*IRIS_COLUMNS, "species"])
        out.writerows([*x, names[y]] for x, y in zip(iris.data.tolist(), iris.target, strict=True))
    rows = (0, 60, 120, 149)
    with (scratch / "new.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", *IRIS_COLUMNS])
        out.writerows([f"flower{i}", *iris.data[i].tolist()] for i in rows)
    (scratch / "iris.yaml").write_text(IRIS_RECIPE)
    _mlstrategy(scratch, "run", "iris.yaml")
    run_dir = _runs(scratch, "iris")["iris"]
    printed = _mlstrategy(scratch, "predict", "logs/iris", "new.csv")
    written = run_dir / "predictions_new.csv"
    return {
        "recipe": IRIS_RECIPE,
        "test_accuracy": _split_scores(run_dir)["test"]["accuracy"],
        "epochs": _json(run_dir / "metrics.json")["epochs"],
        "printed": printed.rstrip(),
        "csv_path": str(written.relative_to(scratch)),
        "csv": written.read_text().rstrip(),
        "true": [str(names[iris.target[i]]) for i in rows],
    }


IRIS_RECIPE = """\
# scikit-learn's iris as a user's CSV: four feature columns and a string label column.
seed_everything: 0
model:
  class_path: mlstrategy.models.SoftmaxRegression
  init_args: {optimizer: adam, learning_rate: 0.05}
data:
  class_path: mlstrategy.data.ArrayDataModule
  init_args:
    source:
      class_path: mlstrategy.data.ArrayFile
      init_args: {path: iris.csv, target: species}
    batch_size: 32
trainer:
  max_epochs: 30
"""


def _benchmark(script: str, *args: str, needs: str | None = None) -> Section:
    """A section running ``benchmarks/<script>.py --json``; one that ``needs`` a program this
    machine lacks keeps its stored figures (see ``Skipped``)."""

    def measure(scratch: Path) -> dict[str, Any]:
        if needs is not None and shutil.which(needs) is None:
            raise Skipped(f"benchmarks/{script}.py needs {needs} (apt install {needs})")
        path = scratch / f"{script}.json"
        cmd = [sys.executable, str(REPO / "benchmarks" / f"{script}.py"), "--json", str(path)]
        subprocess.run([*cmd, *args], cwd=scratch, env=ENV, check=True, stdout=subprocess.DEVNULL)
        return _json(path)

    measure.__doc__ = f"benchmarks/{script}.py {' '.join(args)}".strip()
    return measure


SECTIONS: dict[str, Section] = {
    "quickstart": quickstart,
    "strategy": strategy,
    "transfer": transfer,
    "multitask": multitask,
    "end_to_end": end_to_end,
    "lessons": lessons,
    "mismatch": mismatch,
    "mnist1d": mnist1d,
    "suspects": suspects,
    "predict": predict,
    "loop_overhead": _benchmark("loop_overhead", "--repeats", "12"),
    "time_to_accuracy": _benchmark("time_to_accuracy"),
    "batching": _benchmark("batching"),
    "scaling": _benchmark("scaling"),
    "instructions": _benchmark("instructions", needs="valgrind"),
}


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    return f"{head}{' (with uncommitted changes)' if dirty else ''}"


def machine() -> str:
    """The machine, in the words the READMEs use."""
    import torch

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, {memory:.0f} GiB, "
        f"torch {torch.__version__.split('+')[0]}, Python {platform.python_version()}, "
        "OMP_NUM_THREADS=1"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated sections, of: {', '.join(SECTIONS)}")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; the sections are {', '.join(SECTIONS)}")
    figures = _json(FIGURES) if FIGURES.exists() else {"sections": {}}
    stamp = {
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "commit": _commit(),
    }
    start, measured = time.perf_counter(), 0
    for name in names:
        print(f"measuring {name}: {SECTIONS[name].__doc__.splitlines()[0]}", flush=True)
        began = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"figures-{name}-") as scratch:
            try:
                numbers = SECTIONS[name](Path(scratch))
            except Skipped as why:
                print(f"  skipped, its stored figures kept: {why}", flush=True)
                continue
        seconds = round(time.perf_counter() - began, 1)
        figures["sections"][name] = {**stamp, "seconds": seconds, "figures": numbers}
        print(f"  {seconds:.0f} s", flush=True)
        # Written after each section, so an interrupted run keeps what it measured.
        figures.update(stamp)
        FIGURES.write_text(json.dumps(figures, indent=1, sort_keys=False) + "\n")
        measured += 1
    if measured:
        print(f"wrote {FIGURES.relative_to(REPO)} in {time.perf_counter() - start:.0f} s")
    else:
        print(f"nothing measured; {FIGURES.relative_to(REPO)} is unchanged")


if __name__ == "__main__":
    main()
