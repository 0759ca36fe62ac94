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
    assert list(rows[0])[-1] == "verdict" and list(rows[0])[:4] == [
        "rank",
        "split",
        "index",
        "input",
    ]
    assert (run_dir / "suspect_labels.png").read_bytes()[:4] == b"\x89PNG"
    # errors.csv names every dev example as suspect_labels.csv does.
    assert main(["errors", str(run_dir)]) == 0
    with (run_dir / "errors.csv").open() as f:
        errors = list(csv.DictReader(f))
    named = {(r["split"], r["index"]): r["input"] for r in rows}
    assert errors and all(named[("dev", e["index"])] == e["input"] for e in errors)
    assert all(e["input"].startswith("Digits(flatten=True) row ") for e in errors)
    # Verdicts filled in by hand survive running it again; the report keeps one section.
    rows[0]["verdict"], rows[5]["verdict"] = "wrong", "ok"
    with (run_dir / "suspect_labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    verdicts = {(r["split"], r["index"]): r["verdict"] for r in rows}
    assert main(["suspects", str(run_dir), "--folds", "2"]) == 0
    with (run_dir / "suspect_labels.csv").open() as f:
        again = list(csv.DictReader(f))
    assert {(r["split"], r["index"]): r["verdict"] for r in again} == verdicts
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


@pytest.mark.slow
def test_each_fold_watches_a_dev_set_carved_from_its_own_training_part(in_tmp, monkeypatch):
    """Early stopping and the best weights are chosen on examples of the fold's training part,
    never on the held-out fold whose probabilities are kept."""
    import lightning as L
    import numpy as np

    from mlstrategy.data import ArrayDataModule, Moons
    from mlstrategy.evaluation.suspect_labels import stratified_folds
    from mlstrategy.runs.suspects import INNER_DEV_FRACTION, find_suspects

    data = {
        "class_path": "mlstrategy.data.ArrayDataModule",
        "init_args": {"source": {"class_path": "mlstrategy.data.Moons"}, "batch_size": None},
    }
    recipe = write_recipe(in_tmp / "moons.yaml", SOFTMAX, data, {"max_epochs": 2})
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    fit = L.Trainer.fit

    def recording_fit(trainer, model, datamodule=None, **kwargs):
        splits = datamodule.prepare()
        seen.append((splits["train"][0].numpy().copy(), splits["dev"][0].numpy().copy()))
        return fit(trainer, model, datamodule=datamodule, **kwargs)

    monkeypatch.setattr(L.Trainer, "fit", recording_fit)
    find_suspects([recipe], folds=3)
    splits = ArrayDataModule(Moons()).prepare()
    x = np.concatenate([splits["train"][0].numpy(), splits["dev"][0].numpy()])
    y = np.concatenate([splits["train"][1].numpy(), splits["dev"][1].numpy()])
    rows = {r.tobytes(): i for i, r in enumerate(x)}  # Moons' noisy points are all distinct
    assert len(seen) == 3 and len(rows) == len(x)
    for (train, held), (x_fit, x_dev) in zip(stratified_folds(y, 3), seen, strict=True):
        fit_rows = {rows[r.tobytes()] for r in x_fit}
        dev_rows = {rows[r.tobytes()] for r in x_dev}
        assert not dev_rows & set(held.tolist()) and not fit_rows & set(held.tolist())
        assert fit_rows | dev_rows == set(train.tolist()) and not fit_rows & dev_rows
        assert len(dev_rows) == round(INNER_DEV_FRACTION * len(train))
        # Stratified: each class's share of the dev set is its share of the training part.
        shares = np.bincount(y[sorted(dev_rows)], minlength=2) / len(dev_rows)
        np.testing.assert_allclose(shares, np.bincount(y[train]) / len(train), atol=0.02)
