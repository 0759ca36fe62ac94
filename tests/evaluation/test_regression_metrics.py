"""A regressor's scores per split against scikit-learn, their bootstrap standard errors, and
the diagnosis and selection in the regression's units."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from mlstrategy.data import NoisyCurve, RegressionDataModule
from mlstrategy.evaluation.diagnosis import diagnose_run
from mlstrategy.evaluation.sampling import bootstrap_standard_errors
from mlstrategy.evaluation.scoring import evaluate_splits
from mlstrategy.evaluation.selection import default_goal, select
from mlstrategy.evaluation.settings import EvaluationSettings
from mlstrategy.metrics.regression import RegressionScores
from mlstrategy.models import DeepRegressor


def _sklearn_scores(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    return {
        "mse": skm.mean_squared_error(true, pred),
        "rmse": skm.root_mean_squared_error(true, pred),
        "mae": skm.mean_absolute_error(true, pred),
        "r2": skm.r2_score(true, pred),
    }


def test_scores_fed_in_batches_equal_scikit_learns():
    rng = np.random.default_rng(0)
    true = rng.normal(3.0, 2.0, size=257)
    pred = true + rng.normal(0.5, 1.0, size=257)
    scores = RegressionScores()
    for i in range(0, 257, 64):  # uneven last batch: the whole split, not a mean of batches
        scores.update(
            torch.tensor(0.0), torch.tensor(pred[i : i + 64]), torch.tensor(true[i : i + 64])
        )
    scalars, _ = scores.compute()
    for name, value in _sklearn_scores(pred, true).items():
        assert float(scalars[name]) == pytest.approx(value, rel=1e-5), name


def test_every_split_is_scored_like_scikit_learn_in_the_targets_units():
    L.seed_everything(0)
    data = RegressionDataModule(NoisyCurve(200), batch_size=32, eval_batch_size=50, seed=0)
    model = DeepRegressor((1,), layer_dims=[8])
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, datamodule=data)
    assert float(model.target_std) != 1.0  # the target was standardized for training
    splits = evaluate_splits(trainer, model, data, ckpt_path=None)
    model.eval()
    for split, (x, y) in data.prepare().items():
        with torch.no_grad():
            pred = model.predict_values(model(x)).numpy()  # back in y's units
        for name, value in _sklearn_scores(pred, y.numpy()).items():
            assert splits[split][name] == pytest.approx(value, rel=1e-4, abs=1e-6), (split, name)
        assert splits[split]["n"] == len(y)
        assert set(splits[split]["standard_errors"]) == {"mse", "rmse", "mae", "r2"}


def test_bootstrap_standard_error_of_the_mse_matches_its_formula():
    rng = np.random.default_rng(1)
    true = rng.normal(size=1000)
    pred = true + rng.normal(size=1000)
    se = bootstrap_standard_errors(pred, true, seed=0)
    squared = (pred - true) ** 2
    formula = squared.std(ddof=1) / np.sqrt(len(squared))  # the standard error of a mean
    assert se["mse"] == pytest.approx(formula, rel=0.1)
    assert bootstrap_standard_errors(pred, true, seed=0) == se  # seeded: the same report


def test_the_diagnosis_is_in_rmse_with_bootstrap_noise():
    row = {"n": 600, "mse": 0.53, "rmse": 0.727, "mae": 0.62, "r2": 0.14}
    splits = {
        "train": {**row, "standard_errors": {"rmse": 0.02}},
        "dev": {**row, "n": 200, "rmse": 0.74, "standard_errors": {"rmse": 0.035}},
    }
    d = diagnose_run(splits, human_error=0.2)
    assert d.metric == "rmse" and d.largest == "avoidable_bias"
    assert d.avoidable_bias == pytest.approx(0.527)
    assert d.verdict == "The largest gap is avoidable bias (0.527 RMSE)."
    assert d.sampling["dev"]["standard_error"] == 0.035
    # MAE when the recipe chooses it, with human_error in the same units.
    assert diagnose_run(splits, 0.1, "mae").avoidable_bias == pytest.approx(0.52)
    # A small variance gap within two bootstrap standard errors is flagged as noise.
    close = {"train": {**splits["train"], "rmse": 0.3}, "dev": {**splits["dev"], "rmse": 0.35}}
    notes = " ".join(diagnose_run(close, human_error=0.3).notes)
    assert "within two standard errors (0.08062 RMSE)" in notes


def test_rmse_mse_mae_are_minimized_and_r2_maximized():
    assert [default_goal(f"dev/{m}") for m in ("rmse", "mse", "mae", "r2")] == [
        "min", "min", "min", "max",
    ]  # fmt: skip
    runs = {"line": {"dev/rmse": 0.66, "latency_ms": 0.1}, "deep": {"dev/rmse": 0.21,
            "latency_ms": 9.0}, "small": {"dev/rmse": 0.3, "latency_ms": 1.0}}  # fmt: skip
    assert select(runs, "dev/rmse", ["latency_ms<=5"]).winner == "small"


def test_a_classification_metric_for_a_regressor_is_refused():
    with pytest.raises(ValueError, match="names 'dev/f1', a classification metric, but this "
                       "run's model is a regressor"):  # fmt: skip
        EvaluationSettings(optimize="dev/f1").fit_model(regression=True)
    with pytest.raises(ValueError, match=r"evaluation\.satisfy names 'test/recall'"):
        EvaluationSettings(satisfy=["test/recall>=0.9"]).fit_model(regression=True)
    settings = EvaluationSettings(satisfy=["latency_ms<=5"])
    settings.fit_model(regression=True)
    assert (settings.optimize, settings.error_metric) == ("dev/rmse", "rmse")
    with pytest.raises(ValueError, match="error_metric=rmse is a regression error"):
        EvaluationSettings(error_metric="rmse").fit_model(regression=False)


def test_a_learning_curve_of_rmse_reads_in_the_targets_units():
    from mlstrategy.evaluation.learning_curve import CurvePoint, what_more_data_buys
    from mlstrategy.reporting.plots import learning_curve_figure
    from mlstrategy.runs.learning_curve import train_subset

    points = [
        CurvePoint(0.5, 300, 0.74, 0.66, metric="rmse"),
        CurvePoint(1.0, 600, 0.73, 0.66, metric="rmse"),
    ]
    reading = what_more_data_buys(points, human_error=0.2)
    assert reading["verdict"] == "high_bias"
    assert "training error (0.73 RMSE) is already 0.53 above it" in reading["message"]
    lines = learning_curve_figure(points, 0.2).axes[0].get_lines()
    assert [ln.get_label() for ln in lines][:2] == ["training RMSE", "dev RMSE"]
    # A real-valued target is subset at random (one stratum), nested across sizes.
    data = RegressionDataModule(NoisyCurve(100), seed=0)
    full = data.prepare()["train"][1].clone()
    train_subset(0.25)(data)
    small = data.prepare()["train"][1]
    assert len(small) == 15 and set(small.tolist()) <= set(full.tolist())
