"""Train and dev only (test_fraction: 0): the run has no test split and says what that costs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import write_recipe
from mlstrategy.cli import main
from mlstrategy.data.splits import stratified_split
from mlstrategy.evaluation.diagnosis import diagnose


def test_test_fraction_zero_splits_train_and_dev_only():
    y = np.array([0, 1, 2] * 20)
    parts = stratified_split(y, dev_fraction=0.25, test_fraction=0, seed=0)
    assert list(parts) == ["train", "dev"]
    assert (len(parts["train"]), len(parts["dev"])) == (45, 15)
    assert np.array_equal(np.sort(np.concatenate(list(parts.values()))), np.arange(60))
    assert np.bincount(y[parts["dev"]]).tolist() == [5, 5, 5]  # still stratified
    with pytest.raises(ValueError, match=r"test_fraction=-0.1 is outside \[0, 1\)"):
        stratified_split(y, dev_fraction=0.25, test_fraction=-0.1, seed=0)
    with pytest.raises(ValueError, match=r"dev_fraction=0 is outside \(0, 1\)"):
        stratified_split(y, dev_fraction=0, test_fraction=0, seed=0)


def test_the_diagnosis_without_a_test_split_says_dev_is_optimistic():
    d = diagnose(0.05, 0.08, split_sizes={"train": 400, "dev": 100})
    assert d.dev_overfitting is None
    assert any("No test split" in n and "optimistic" in n for n in d.notes)
    with_test = diagnose(0.05, 0.08, 0.09, split_sizes={"train": 400, "dev": 100, "test": 100})
    assert with_test.dev_overfitting == pytest.approx(0.01)
    assert not any("No test split" in n for n in with_test.notes)


@pytest.mark.slow
def test_a_run_with_test_fraction_zero_scores_train_and_dev(in_tmp, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    np.savez(in_tmp / "d.npz", X=x, y=(x[:, 0] > 0).astype(int))
    source = {"class_path": "mlstrategy.data.ArrayFile", "init_args": {"path": "d.npz"}}
    data = {
        "class_path": "mlstrategy.data.ArrayDataModule",
        "init_args": {"source": source, "test_fraction": 0, "batch_size": None},
    }
    model = {"class_path": "mlstrategy.models.LogisticRegression"}
    assert main(["run", str(write_recipe(in_tmp / "r.yaml", model, data))]) == 0
    assert "No test split" in capsys.readouterr().out
    (run_dir,) = (in_tmp / "logs" / "r").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert list(metrics["splits"]) == ["train", "dev"]
    assert (metrics["splits"]["train"]["n"], metrics["splits"]["dev"]["n"]) == (96, 24)
    diagnosis = json.loads((run_dir / "diagnosis.json").read_text())
    assert diagnosis["dev_overfitting"] is None and diagnosis["test_error"] is None
    assert any("dev was used to choose" in n for n in diagnosis["notes"])
    assert main(["diagnose", str(run_dir)]) == 0
    assert "optimistic" in capsys.readouterr().out
