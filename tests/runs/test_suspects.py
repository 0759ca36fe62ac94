"""``mlstrategy suspects RUN_DIR``: what it writes into a finished run, and the bad inputs it
refuses with one paragraph (exit 2)."""

from __future__ import annotations

import csv
import json

import pytest

from conftest import write_recipe
from mlstrategy.cli import main

SOFTMAX = {
    "class_path": "mlstrategy.models.SoftmaxRegression",
    "init_args": {"optimizer": "adam", "learning_rate": 0.1},
}
DIGITS = {
    "class_path": "mlstrategy.data.ArrayDataModule",
    "init_args": {"source": {"class_path": "mlstrategy.data.Digits"}, "batch_size": None},
}


@pytest.mark.slow
def test_suspects_ranks_every_train_and_dev_label_into_the_run_folder(in_tmp, capsys):
    recipe = write_recipe(in_tmp / "digits.yaml", SOFTMAX, DIGITS, {"max_epochs": 10})
    assert main(["run", str(recipe)]) == 0
    (run_dir,) = (in_tmp / "logs" / "digits").iterdir()
    capsys.readouterr()
    assert main(["suspects", str(run_dir.parent), "--folds", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("fold ") == 3 and "train and dev labels ranked into" in out
    with (run_dir / "suspect_labels.csv").open() as f:
        rows = list(csv.DictReader(f))
    splits = json.loads((run_dir / "metrics.json").read_text())["splits"]
    assert len(rows) == splits["train"]["n"] + splits["dev"]["n"]
    assert {r["split"] for r in rows} == {"train", "dev"}
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    p_given = [float(r["p_given"]) for r in rows]
    assert p_given == sorted(p_given)
    assert list(rows[0])[-1] == "verdict" and "source_row" in rows[0]
    assert (run_dir / "suspect_labels.png").read_bytes()[:4] == b"\x89PNG"
    # Run again: the report keeps one section, replaced.
    assert main(["suspects", str(run_dir), "--folds", "2"]) == 0
    report = (run_dir / "report.md").read_text()
    assert report.count("## Suspect labels (train and dev)") == 1
    assert "refitted 2 times" in report and "![most suspect labels](suspect_labels.png)" in report
    assert report.startswith("# Run report: digits")


def test_one_fold_is_refused_before_anything_is_built(in_tmp, capsys):
    run_dir = in_tmp / "logs" / "r" / "1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("model: {}\n")
    assert main(["suspects", str(run_dir), "--folds", "1"]) == 2
    err = capsys.readouterr().err
    assert "--folds 1: cross-validation needs at least 2 folds" in err
    assert "Traceback" not in err


def test_a_run_without_its_config_is_refused_with_the_fix(in_tmp, fake_run, capsys):
    run_dir = fake_run(in_tmp / "logs" / "r" / "1", {"train": 0.1, "dev": 0.2})
    assert main(["suspects", str(run_dir)]) == 2
    assert "has no config.yaml, the recipe `suspects` refits" in capsys.readouterr().err
    assert main(["suspects", str(in_tmp / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
