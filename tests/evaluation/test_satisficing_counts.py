"""False positives and negatives, and their rates, as satisficing metrics (per split and per
class), against scikit-learn's confusion_matrix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix

from conftest import write_recipe
from mlstrategy.cli import main
from mlstrategy.evaluation.selection import check_metric_name, default_goal, flatten_metrics
from mlstrategy.metrics.classification import ClassificationScores, score_predictions

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def _labels(k: int, m: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, k, m), rng.integers(0, k, m)


def test_binary_split_scores_count_the_positive_class_like_sklearn():
    y, p = _labels(2)
    tn, fp, fn, tp = confusion_matrix(y, p).ravel()
    s = score_predictions(torch.from_numpy(p), torch.from_numpy(y), 2)
    assert (s["fp"], s["fn"]) == (fp, fn)
    assert s["fp_rate"] == pytest.approx(fp / (fp + tn), abs=1e-12)
    assert s["fn_rate"] == pytest.approx(fn / (fn + tp), abs=1e-12)
    # The per-class rows: class 1 as above, class 0 the mirror image.
    assert s["per_class"]["1"]["fp"] == fp and s["per_class"]["0"]["fp"] == fn
    assert s["per_class"]["0"]["fn_rate"] == pytest.approx(fp / (fp + tn), abs=1e-12)


def test_multiclass_per_class_counts_are_one_vs_rest_like_sklearn():
    k = 4
    y, p = _labels(k, seed=1)
    s = score_predictions(torch.from_numpy(p), torch.from_numpy(y), k)
    assert "fp" not in s  # no single positive class: per class only
    for c in range(k):
        tn, fp, fn, tp = confusion_matrix(y == c, p == c).ravel()
        row = s["per_class"][str(c)]
        assert (row["fp"], row["fn"]) == (fp, fn)
        assert row["fp_rate"] == pytest.approx(fp / (fp + tn), abs=1e-12)
        assert row["fn_rate"] == pytest.approx(fn / (fn + tp), abs=1e-12)


def test_batched_scores_match_the_whole_split():
    y, p = _labels(2, m=300, seed=2)
    scores = ClassificationScores(2)
    for chunk in np.array_split(np.arange(300), 7):
        scores.update(torch.tensor(0.1), torch.from_numpy(p[chunk]), torch.from_numpy(y[chunk]))
    scalars, _ = scores.compute()
    tn, fp, fn, _ = confusion_matrix(y, p).ravel()
    assert float(scalars["fp"]) == fp and float(scalars["fn"]) == fn
    assert float(scalars["fp_rate"]) == pytest.approx(fp / (fp + tn), abs=1e-12)


def test_a_class_with_no_examples_has_rate_zero():
    s = score_predictions(torch.tensor([0, 0, 1]), torch.tensor([0, 0, 0]), 2)
    assert s["fn_rate"] == 0.0 and s["fp"] == 1 and s["fp_rate"] == pytest.approx(1 / 3)


def test_the_names_are_selectable_and_minimized():
    for name in ("dev/fp", "dev/fn", "dev/fp_rate", "test/fn_rate/cat"):
        check_metric_name(name, "--satisfy")
        assert default_goal(name) == "min"
    metrics = {"splits": {"dev": {"fp_rate": 0.01, "per_class": {"cat": {"fn": 3}}}}}
    assert flatten_metrics(metrics) == {"dev/fp_rate": 0.01, "dev/fn/cat": 3.0}


@pytest.mark.slow
def test_satisfy_on_the_false_positive_rate_through_compare(in_tmp, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    np.savez(in_tmp / "d.npz", X=x, y=(x[:, 0] + 0.5 * rng.normal(size=200) > 0).astype(int))
    source = {"class_path": "mlstrategy.data.ArrayFile", "init_args": {"path": "d.npz"}}
    data = {"class_path": "mlstrategy.data.ArrayDataModule", "init_args": {"source": source}}
    model = {"class_path": "mlstrategy.models.LogisticRegression"}
    recipe = write_recipe(in_tmp / "r.yaml", model, data, {"max_epochs": 5})
    assert main(["run", str(recipe), *QUIET]) == 0
    (path,) = in_tmp.glob("logs/r/*/metrics.json")
    dev = json.loads(path.read_text())["splits"]["dev"]
    assert {"fp", "fn", "fp_rate", "fn_rate"} <= set(dev)
    capsys.readouterr()
    loose = dev["fp_rate"] + 0.01
    assert main(["compare", "logs", "--satisfy", f"dev/fp_rate<={loose}"]) == 0
    assert "winner" in capsys.readouterr().out
    tight = ["compare", "logs", "--satisfy", f"dev/fp_rate<{dev['fp_rate']}"]
    main(tight)
    assert "dev/fp_rate" in capsys.readouterr().out
