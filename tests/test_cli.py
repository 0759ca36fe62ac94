"""The command line: verbs, the run folder, and one-paragraph errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, run_cli_subprocess, write_recipe
from mlstrategy.cli import main


def _only_run_dir(root: Path) -> Path:
    runs = [p for p in (root / "logs").glob("*/*") if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_run_writes_the_run_folder_and_summary(tiny_recipe, capsys):
    assert main(["run", str(tiny_recipe)]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "test" in out and "accuracy" in out
    run_dir = _only_run_dir(tiny_recipe.parent)
    assert run_dir.parent.name == "tiny"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert list(metrics["splits"]) == ["train", "dev", "test"]
    for row in metrics["splits"].values():
        assert set(row) >= {"error", "accuracy", "precision", "recall", "f1", "loss", "n"}
        assert row["error"] == pytest.approx(1 - row["accuracy"])
        assert 0.85 < row["accuracy"] <= 1
    assert metrics["params"] == 31
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["class_path"] == "mlstrategy.models.LogisticRegression"
    assert not (run_dir / "FAILED").exists()


def test_run_metrics_match_a_reload_of_the_best_checkpoint(tiny_recipe):
    from sklearn.metrics import accuracy_score, f1_score

    from mlstrategy.data import ArrayDataModule, BreastCancer
    from mlstrategy.models import LogisticRegression

    assert main(["run", str(tiny_recipe)]) == 0
    run_dir = _only_run_dir(tiny_recipe.parent)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    ckpt = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True, map_location="cpu")
    model = LogisticRegression(input_shape=(30,))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    x, y = ArrayDataModule(BreastCancer(), seed=0).prepare()["test"]
    with torch.no_grad():
        pred = model.predict_labels(model(x))
    assert metrics["splits"]["test"]["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-6)
    assert metrics["splits"]["test"]["f1"] == pytest.approx(f1_score(y, pred), abs=1e-6)


def test_tensorboard_has_train_and_dev_cost_for_every_epoch(tiny_recipe):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main(["run", str(tiny_recipe), "--trainer.max_epochs=4"]) == 0
    run_dir = _only_run_dir(tiny_recipe.parent)
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tags = events.Tags()["scalars"]
    # One tag, "cost", in the train and dev sub-runs: one chart, a line each.
    costs = {}
    for split in ("train", "dev"):
        sub_run = EventAccumulator(str(run_dir / split))
        sub_run.Reload()
        costs[split] = sub_run.Scalars("cost")
        assert [e.step for e in costs[split]] == [0, 1, 2, 3], split
        assert all(np.isfinite(e.value) and e.value > 0 for e in costs[split])
    assert {"test/accuracy", "train/error", "dev/f1"} <= set(tags)
    # Full-batch gradient descent on a convex cost: the training cost goes down every epoch.
    train = [e.value for e in costs["train"]]
    assert train == sorted(train, reverse=True)


def test_plain_lightning_verbs_work(tiny_recipe, capsys):
    assert main(["fit", "--config", str(tiny_recipe)]) == 0
    run_dir = _only_run_dir(tiny_recipe.parent)
    best = run_dir / "checkpoints" / "best.ckpt"
    assert best.is_file() and (run_dir / "config.yaml").is_file()
    config_before = (run_dir / "config.yaml").read_text()
    assert main(["test", "--config", str(tiny_recipe), f"--ckpt_path={best}"]) == 0
    assert main(["validate", "--config", str(tiny_recipe), f"--ckpt_path={best}"]) == 0
    assert main(["predict", "--config", str(tiny_recipe), f"--ckpt_path={best}"]) == 0
    # Scoring a finished run logs into its folder and leaves its config alone.
    assert _only_run_dir(tiny_recipe.parent) == run_dir
    assert (run_dir / "config.yaml").read_text() == config_before


def test_help_lists_verbs_and_run_help_explains_recipes(capsys):
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    for verb in ("run", "fit", "validate", "test", "predict"):
        assert f"  {verb}" in top
    assert main(["run", "--help"]) == 0
    assert "A recipe is a LightningCLI config" in capsys.readouterr().out


def _bad(recipe_dir: Path, **data_args) -> Path:
    return write_recipe(
        recipe_dir / "bad.yaml",
        model={"class_path": "mlstrategy.models.LogisticRegression"},
        data={"class_path": "mlstrategy.data.ArrayDataModule", "init_args": data_args},
    )


def _npz(path: Path, x: np.ndarray, y: np.ndarray, **extra) -> dict:
    np.savez(path, X=x, y=y)
    return {"class_path": "mlstrategy.data.ArrayFile", "init_args": {"path": str(path), **extra}}


BREAST = {"class_path": "mlstrategy.data.BreastCancer"}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown_key", "batchsize"),
        ("wrong_type", "max_epochs"),
        ("missing_recipe", "does not exist"),
        ("fraction_outside", "dev_fraction=1.5 is outside (0, 1)"),
        ("empty_split", "leaving no examples to train on"),
        ("missing_column", "has no array named 'label'"),
        ("nan_features", "NaN or infinite features"),
        ("labels_out_of_range", "labels out of range"),
    ],
)
def test_bad_input_gets_one_paragraph_and_exit_code_2(case, message, in_tmp, capsys):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    args: list[str] = []
    if case == "unknown_key":
        recipe = _bad(in_tmp, source=BREAST, batchsize=3)
    elif case == "wrong_type":
        recipe = _bad(in_tmp, source=BREAST)
        args = ["--trainer.max_epochs=many"]
    elif case == "missing_recipe":
        recipe = in_tmp / "nope.yaml"
    elif case == "fraction_outside":
        recipe = _bad(in_tmp, source=BREAST, dev_fraction=1.5)
    elif case == "empty_split":
        recipe = _bad(in_tmp, source=BREAST, dev_fraction=0.5, test_fraction=0.5)
    elif case == "missing_column":
        recipe = _bad(in_tmp, source=_npz(in_tmp / "d.npz", x, y, target="label"))
    elif case == "nan_features":
        x[3, 0] = np.nan
        recipe = _bad(in_tmp, source=_npz(in_tmp / "d.npz", x, y))
    else:
        recipe = _bad(in_tmp, source=_npz(in_tmp / "d.npz", x, y - 1))
    code = main(["run", str(recipe), *args])
    captured = capsys.readouterr()
    text = captured.err + captured.out
    assert code == 2
    assert message in text
    assert "Traceback" not in text
    # Nothing half-written is left looking like a finished run.
    assert not list(in_tmp.glob("logs/*/*/metrics.json"))


def test_console_script_exit_code_and_no_traceback(in_tmp):
    recipe = _bad(in_tmp, source=BREAST, test_fraction=-0.1)  # 0 is allowed: no test split
    result = run_cli_subprocess("run", str(recipe), cwd=in_tmp)
    assert result.returncode == 2
    assert "test_fraction=-0.1 is outside [0, 1)" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["quickstart.yaml", "softmax_digits.yaml"])
def test_shipped_recipes_reach_95_percent_test_accuracy(recipe, in_tmp):
    overrides = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    assert main(["run", str(REPO / "recipes" / recipe), *overrides]) == 0
    metrics = json.loads(next(in_tmp.glob("logs/*/*/metrics.json")).read_text())
    assert metrics["splits"]["test"]["accuracy"] >= 0.95


def test_bad_model_hyperparameter_reads_as_one_sentence(tiny_recipe, capsys):
    code = main(["run", str(tiny_recipe), "--model.init_args.learning_rate=-1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "learning_rate=-1.0 must be > 0" in err
    assert "Union subtypes" not in err and "Namespace(" not in err
