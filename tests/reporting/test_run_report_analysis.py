"""`mlstrategy run` end to end: every kind of run gets its error analysis in report.md and
diagnosis.json (image folders, multi-task models), and a multi-task run of regression tasks
only finishes, with no NaN error rate and its diagnosis skipped with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_recipe
from mlstrategy.cli import main
from mlstrategy.run_folder import DIAGNOSIS_FILE, METRICS_FILE, REPORT_FILE


def _run(recipe: Path) -> tuple[Path, dict, dict, str]:
    """Run a recipe through the CLI; its run folder, metrics, diagnosis and report."""
    assert main(["run", str(recipe)]) == 0
    (metrics_path,) = (recipe.parent / "logs").rglob(METRICS_FILE)
    run_dir = metrics_path.parent
    return (
        run_dir,
        json.loads(metrics_path.read_text()),
        json.loads((run_dir / DIAGNOSIS_FILE).read_text()),
        (run_dir / REPORT_FILE).read_text(),
    )


def _best_model(run_dir: Path, cls):
    ckpt = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    model = cls(**{k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")})
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


# ------------------------------------------------------------------------ regression tasks only
def _sizes_csv(path: Path, m: int = 150) -> Path:
    """Three features and two real-valued labels; every 7th ``size`` is missing."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(m, 3))
    size = x @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=m)
    speed = 0.3 * x[:, 0] + 0.25
    lines = ["a,b,c,size,speed"]
    for i in range(m):
        cell = "" if i % 7 == 0 else f"{size[i]:.4f}"
        lines.append(f"{x[i, 0]:.4f},{x[i, 1]:.4f},{x[i, 2]:.4f},{cell},{speed[i]:.4f}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_a_multitask_recipe_of_regression_heads_only_runs_to_a_finished_folder(in_tmp, capsys):
    from mlstrategy.data import LabelsFile, MultiTaskDataModule
    from mlstrategy.models import MultiTaskNet

    _sizes_csv(in_tmp / "sizes.csv")
    source = {"path": "sizes.csv", "labels": ["size", "speed"]}
    recipe = write_recipe(
        in_tmp / "sizes.yaml",
        model={
            "class_path": "mlstrategy.models.MultiTaskNet",
            "init_args": {
                "heads": {"size": {"kind": "regression"}, "speed": {"kind": "regression"}},
                "layer_dims": [8],
                "learning_rate": 0.01,
            },
        },
        data={
            "class_path": "mlstrategy.data.MultiTaskDataModule",
            "init_args": {
                "source": {"class_path": "mlstrategy.data.LabelsFile", "init_args": source},
                "batch_size": None,
            },
        },
    )
    run_dir, metrics, diagnosis, report = _run(recipe)
    out = capsys.readouterr().out
    assert "diagnosis skipped: no task is a classification" in " ".join(out.split())

    # No error rate, and no NaN standing in for one: null in metrics.json, "-" in the report.
    for split, row in metrics["splits"].items():
        assert [row[k] for k in ("error", "accuracy", "precision", "recall", "f1")] == [None] * 5
        assert row["loss"] == pytest.approx(sum(t["mse"] for t in row["tasks"].values()))
        assert f"| {split} | {row['n']} | - | - | - | - | - |" in report
    assert "nan" not in report.lower() and "NaN" not in (run_dir / METRICS_FILE).read_text()
    assert diagnosis["skipped"].startswith("no task is a classification")
    assert "largest" not in diagnosis
    assert f"## Diagnosis\n\nSkipped: {diagnosis['skipped']}." in report
    assert diagnosis["tasks"] == {
        t: {"skipped": "regression: no error rate (see mse)"} for t in ("size", "speed")
    }

    # The per-task table shows each task's mse: that of the best weights on its present labels.
    model = _best_model(run_dir, MultiTaskNet)
    x, y = MultiTaskDataModule(LabelsFile(**source), seed=0).prepare()["dev"]
    with torch.no_grad():
        out_dev = model(x)
    for j, task in enumerate(("size", "speed")):
        keep = ~torch.isnan(y[:, j])
        mse = float(((out_dev[task][keep, 0] - y[keep, j]) ** 2).mean())
        row = metrics["splits"]["dev"]["tasks"][task]
        assert row["n"] == int(keep.sum()) and row["mse"] == pytest.approx(mse, rel=1e-4)
        assert f"| {task} | dev | {row['n']} | mse {row['mse']:.4f} |" in report
    assert diagnosis["same_distribution"]["tasks"] == {}  # no labels to compare, features only
    # The read-only verb says the same of the finished folder.
    assert main(["diagnose", str(run_dir)]) == 0
    assert "diagnosis skipped: no task is a classification" in " ".join(
        capsys.readouterr().out.split()
    )


# -------------------------------------------------------------------------------- image folders
@pytest.mark.slow
def test_an_image_folder_run_reports_its_highest_loss_files_and_confusions(in_tmp):
    from mlstrategy.data import DigitImages
    from mlstrategy.data.images import write_image_folder

    write_image_folder(DigitImages(size=12, classes=[1, 7, 9]).load(0), in_tmp / "digits", 20)
    recipe = write_recipe(
        in_tmp / "folder.yaml",
        model={"class_path": "mlstrategy.models.ConvNet", "init_args": {"channels": [4]}},
        data={
            "class_path": "mlstrategy.data.ImageFolderDataModule",
            "init_args": {
                "root": "digits",
                "image_size": 12,
                "resize_size": 12,
                "augment": False,
                "num_workers": 0,
                "batch_size": 16,
            },
        },
    )
    run_dir, metrics, diagnosis, report = _run(recipe)
    dev = metrics["splits"]["dev"]
    names = list(dev["per_class"])
    cm = np.array(dev["confusion_matrix"])
    errors = int(cm.sum() - np.trace(cm))
    # The confused pairs are the scorer's off-diagonal cells, their shares of all dev errors.
    for pair in diagnosis["most_confused"]:
        i, j = names.index(pair["true"]), names.index(pair["predicted"])
        assert pair["count"] == cm[i, j] and pair["share"] == pytest.approx(cm[i, j] / errors)
    worst = diagnosis["highest_loss"]
    assert len(worst) == min(10, dev["n"])
    for w in worst:  # each a dev image on disk, in the folder of its true class
        path = Path(w["file"])
        assert (in_tmp / path).is_file() and path.parent.name == w["true"]
        assert f"| {w['index']} | {w['file']} | {w['true']} | {w['predicted']} |" in report
    assert [w["loss"] for w in worst] == sorted((w["loss"] for w in worst), reverse=True)
    assert "![highest-loss dev examples](dev_highest_loss.png)" in report
    assert (run_dir / "dev_highest_loss.png").is_file()
    same = diagnosis["same_distribution"]
    assert same["dev_labels"] == same["test_labels"] == [0.3333] * 3  # stratified: 4 of each
    assert "## Dev and test distributions" in report


# ---------------------------------------------------------------------------------- multi-task
@pytest.mark.slow
def test_a_multitask_run_reports_each_tasks_error_analysis(in_tmp):
    from mlstrategy.data import MultiTaskDataModule, StreetScenes

    scenes = {"n_samples": 160, "image_size": 16, "missing_fraction": 0.3}
    recipe = write_recipe(
        in_tmp / "scenes.yaml",
        model={
            "class_path": "mlstrategy.models.MultiTaskNet",
            "init_args": {
                "heads": {
                    "car": {"kind": "binary"},
                    "size": {"kind": "binary", "columns": ["pedestrian"]},
                },
                "layer_dims": [8],
            },
        },
        data={
            "class_path": "mlstrategy.data.MultiTaskDataModule",
            "init_args": {
                "source": {"class_path": "mlstrategy.data.StreetScenes", "init_args": scenes},
                "batch_size": None,
            },
        },
    )
    _, metrics, diagnosis, report = _run(recipe)
    data = MultiTaskDataModule(StreetScenes(**scenes), seed=0)
    _, y_dev = data.prepare()["dev"]
    _, y_test = data.prepare()["test"]
    assert "## Error analysis per task (dev, present labels only)" in report
    for task in ("car", "pedestrian"):
        column = data.label_names.index(task)
        analysis = diagnosis["tasks"][task]
        assert "largest" in analysis  # its diagnosis and its error analysis in one entry
        cm = np.array(metrics["splits"]["dev"]["tasks"][task]["confusion_matrix"])
        counts = {(p["true"], p["predicted"]): p["count"] for p in analysis["most_confused"]}
        assert counts.get(("present", "absent"), 0) == cm[1, 0]
        assert counts.get(("absent", "present"), 0) == cm[0, 1]
        for w in analysis["highest_loss"]:  # a dev example that has this label, as named
            label = float(y_dev[w["index"], column])
            assert label >= 0 and ["absent", "present"][int(label)] == w["true"]
        assert f"### {task}" in report
        present = y_test[:, column][y_test[:, column] >= 0]
        share = round(float((present == 1).float().mean()), 4)
        assert diagnosis["same_distribution"]["tasks"][task]["test_labels"][1] == share
