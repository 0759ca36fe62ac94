"""Per-task scores on present labels only, against scikit-learn; "no labels" entries; the
per-task diagnosis, tables and report sections."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    recall_score,
)

from conftest import task_row, task_splits
from mlstrategy.data import InMemoryBatches
from mlstrategy.evaluation.diagnosis import Diagnosis, diagnose
from mlstrategy.evaluation.multitask import NO_LABELS, diagnose_tasks
from mlstrategy.evaluation.scoring import SplitScorer
from mlstrategy.metrics.tasks import score_task, summarize_tasks
from mlstrategy.models import Head, MultiTaskNet

rng = np.random.default_rng(0)


def test_binary_scores_equal_scikit_learn_on_present_labels_only():
    target = rng.integers(0, 2, 200).astype(np.float64)
    pred = np.where(rng.random(200) < 0.7, target, 1 - target).astype(np.int64)
    target[rng.random(200) < 0.3] = -1
    present = target >= 0
    t, p = target[present].astype(int), pred[present]
    s = score_task(torch.from_numpy(pred), torch.from_numpy(target))
    assert s["n"] == int(present.sum())
    assert s["f1"] == pytest.approx(f1_score(t, p), abs=1e-6)
    assert s["precision"] == pytest.approx(precision_score(t, p), abs=1e-6)
    assert s["recall"] == pytest.approx(recall_score(t, p), abs=1e-6)
    assert s["error"] == pytest.approx(1 - accuracy_score(t, p), abs=1e-6)
    # Counting missing labels as class 0 would give another F1: the masking matters here.
    assert s["f1"] != pytest.approx(f1_score(np.maximum(target, 0).astype(int), pred), abs=1e-3)


def test_multiclass_and_regression_scores_on_present_labels():
    target = rng.integers(0, 3, 150).astype(np.float64)
    pred = np.where(rng.random(150) < 0.6, target, rng.integers(0, 3, 150)).astype(np.int64)
    target[::4] = -1
    keep = target >= 0
    s = score_task(pred, target, kind="multiclass", num_classes=3, class_names=["a", "b", "c"])
    t, p = target[keep].astype(int), pred[keep]
    assert s["f1"] == pytest.approx(f1_score(t, p, average="macro"), abs=1e-6)
    assert s["per_class"]["c"]["recall"] == pytest.approx(
        recall_score(t, p, average=None)[2], abs=1e-4
    )
    values = rng.normal(size=50)
    truth = values + rng.normal(scale=0.5, size=50)
    truth[[3, 7, 11]] = np.nan
    r = score_task(torch.from_numpy(values), torch.from_numpy(truth), kind="regression")
    ok = ~np.isnan(truth)
    assert r["n"] == 47
    assert r["mse"] == pytest.approx(mean_squared_error(truth[ok], values[ok]), rel=1e-9)
    assert r["mae"] == pytest.approx(mean_absolute_error(truth[ok], values[ok]), rel=1e-9)
    # A regression target of -1 is a value, not a missing label.
    assert score_task(torch.tensor([0.0]), torch.tensor([-1.0]), kind="regression")["mse"] == 1.0


def test_an_all_missing_task_is_a_no_labels_entry():
    assert score_task(torch.tensor([1, 0]), torch.tensor([-1, -1])) == {"n": 0, "no_labels": True}
    nan = torch.tensor([float("nan")])
    assert score_task(torch.tensor([0.3]), nan, kind="regression")["no_labels"]


def _model_and_data():
    torch.manual_seed(0)
    net = MultiTaskNet(
        (3,),
        {"a": Head(), "w": Head("multiclass", num_classes=3), "d": Head("regression")},
        layer_dims=[5],
    )
    g = torch.Generator().manual_seed(1)
    x = torch.randn(90, 3, generator=g)
    y = torch.stack(
        [
            torch.randint(0, 2, (90,), generator=g).float(),
            torch.randint(0, 3, (90,), generator=g).float(),
            torch.randn(90, generator=g),
        ],
        dim=1,
    )
    y[torch.rand(90, generator=g) < 0.3, 0] = -1
    y[torch.rand(90, generator=g) < 0.3, 1] = -1
    y[torch.rand(90, generator=g) < 0.3, 2] = float("nan")
    y[:32, 0] = -1  # the first batch of 32 has no label for task "a"
    return net, x, y


@pytest.mark.filterwarnings("ignore:.*val_dataloader.*")
def test_model_scores_a_split_over_batches_as_scikit_learn_does_over_the_whole():
    import lightning as L

    net, x, y = _model_and_data()
    scorer = SplitScorer("dev")
    trainer = L.Trainer(
        logger=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[scorer]
    )
    out = trainer.test(net, InMemoryBatches(x, y, batch_size=32), verbose=False)[0]
    rows = scorer.details["tasks"]
    with torch.no_grad():
        z = net(x)
    keep = y[:, 0] >= 0
    pred_a = (z["a"] > 0).long()
    assert rows["a"]["n"] == int(keep.sum())
    assert rows["a"]["f1"] == pytest.approx(f1_score(y[keep, 0], pred_a[keep]), abs=1e-6)
    assert out["dev/a/f1"] == pytest.approx(rows["a"]["f1"])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(z["a"][keep], y[keep, 0])
    assert rows["a"]["loss"] == pytest.approx(bce.item(), rel=1e-5)
    keep_w = y[:, 1] >= 0
    pred_w = z["w"].argmax(-1)
    assert rows["w"]["f1"] == pytest.approx(
        f1_score(y[keep_w, 1], pred_w[keep_w], average="macro"), abs=1e-6
    )
    keep_d = ~torch.isnan(y[:, 2])
    assert rows["d"]["mse"] == pytest.approx(
        mean_squared_error(y[keep_d, 2], z["d"][keep_d, 0]), rel=1e-5
    )
    assert "f1" not in rows["d"]
    # Test with every label of task "a" missing: a "no labels" entry, and nothing logged for it.
    y2 = y.clone()
    y2[:, 0] = -1
    out = trainer.test(net, InMemoryBatches(x, y2, batch_size=32), verbose=False)[0]
    assert scorer.details["tasks"]["a"] == {
        "kind": "binary",
        "head": "a",
        "n": 0,
        "no_labels": True,
        "loss_weight": 1.0,
    }
    assert "dev/a/f1" not in out and "dev/w/f1" in out


def test_diagnosis_per_task_reuses_the_course_gaps():
    d = diagnose_tasks(task_splits(), human_error=0.01)
    car = d["car"]
    assert isinstance(car, Diagnosis)
    reference = diagnose(0.02, 0.12, test_error=0.13, human_error=0.01)
    assert car.gaps == pytest.approx(reference.gaps)
    assert car.largest == "variance"
    sign = d["sign"]
    assert isinstance(sign, Diagnosis) and sign.largest == "avoidable_bias"
    assert d["gone"] == f"{NO_LABELS} in dev: cannot diagnose"
    reg = {"train": {"tasks": {"d": {"kind": "regression", "n": 5, "mse": 1.0}}}}
    assert diagnose_tasks(reg)["d"].startswith("regression")


def test_summary_row_averages_tasks_that_have_labels():
    rows = {
        "a": task_row(0.1, loss_weight=2.0),
        "b": task_row(0.3),
        "c": {"kind": "binary", "n": 0, "no_labels": True},
        "d": {"kind": "regression", "n": 4, "mse": 9.0, "loss": 9.0, "loss_weight": 0.5},
    }
    s = summarize_tasks(rows)
    assert s["error"] == pytest.approx(0.2) and s["f1"] == pytest.approx(0.8)
    assert s["loss"] == pytest.approx(2.0 * 0.2 + 0.6 + 0.5 * 9.0)
    assert summarize_tasks({"c": rows["c"]})["f1"] is None


def test_a_split_of_regression_tasks_only_has_no_error_rate_and_no_nan():
    rows = {
        "size": {"kind": "regression", "n": 4, "mse": 9.0, "loss": 9.0, "loss_weight": 0.5},
        "speed": {"kind": "regression", "n": 3, "mse": 1.0, "loss": 1.0},
    }
    s = summarize_tasks(rows)
    assert {k: s[k] for k in ("error", "accuracy", "precision", "recall", "f1")} == dict.fromkeys(
        ("error", "accuracy", "precision", "recall", "f1")
    )
    assert s["loss"] == pytest.approx(0.5 * 9.0 + 1.0)
    assert not any(isinstance(v, float) and math.isnan(v) for v in s.values())


def test_a_run_without_an_error_rate_is_not_diagnosed_and_says_why():
    from mlstrategy.evaluation.diagnosis import diagnose_run, diagnose_splits

    size = {"kind": "regression", "n": 5, "mse": 0.4}
    regression = {s: {"n": 5, "error": None, "tasks": {"size": size}} for s in ("train", "dev")}
    reason = diagnose_run(regression, human_error=0.01)
    assert isinstance(reason, str) and reason.startswith("no task is a classification")
    assert "mse" in reason
    with pytest.raises(ValueError, match=r"no error for split\(s\) \['train', 'dev'\]"):
        diagnose_splits(regression)  # asked directly: a clear error, not a float(None)
    # Classification tasks whose dev labels are all missing: no error rate in dev.
    car = task_row(0.1)
    mixed = {
        "train": {"n": 5, "error": 0.1, "tasks": {"car": car}},
        "dev": {
            "n": 5,
            "error": None,
            "tasks": {"car": {"kind": "binary", "n": 0, "no_labels": True}},
        },
    }
    assert diagnose_run(mixed) == (
        "no classification task has labels in dev, so there is no error rate to diagnose there"
    )
    with_errors = {
        s: {"n": 100, "error": e, "tasks": {"car": car}} for s, e in (("train", 0.1), ("dev", 0.2))
    }
    assert isinstance(diagnose_run(with_errors, 0.05), Diagnosis)
    assert diagnose_run(with_errors, 0.05) == diagnose_splits(with_errors, 0.05)


def test_per_task_scores_can_be_optimized_and_satisficed_in_a_comparison():
    from mlstrategy.evaluation.selection import flatten_metrics, select

    def run(car_f1: float, sign_recall: float) -> dict:
        tasks = {"car": task_row(1 - car_f1), "sign": task_row(0.1)}
        tasks["car"]["f1"] = car_f1
        tasks["sign"]["recall"] = sign_recall
        return flatten_metrics({"splits": {"test": {"f1": 0.5, "n": 9, "tasks": tasks}}})

    flat = run(0.8, 0.95)
    assert flat["test/f1/car"] == 0.8 and flat["test/recall/sign"] == 0.95
    assert "test/n/car" not in flat  # counts are not scores
    s = select({"a": run(0.9, 0.5), "b": run(0.8, 0.95)}, "test/f1/car", ["test/recall/sign>=0.9"])
    assert s.winner == "b"


@pytest.mark.filterwarnings("ignore:.*val_dataloader.*")
def test_evaluate_splits_scores_a_multitask_model_per_task_on_every_split():
    import lightning as L

    from mlstrategy.data import MultiTaskDataModule, StreetScenes
    from mlstrategy.evaluation.scoring import evaluate_splits

    L.seed_everything(0, verbose=False)
    data = MultiTaskDataModule(
        StreetScenes(n_samples=80, image_size=16), batch_size=16, eval_batch_size=7, seed=0
    )
    data.prepare()
    heads = {
        "car": Head("binary", loss_weight=2.0),
        "signs": Head("multilabel", columns=["stop_sign", "traffic_light"]),
        "pedestrian": Head("binary"),
    }
    net = MultiTaskNet(data.input_shape, heads, num_classes=data.num_classes, layer_dims=[8])
    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(net, datamodule=data)
    splits = evaluate_splits(trainer, net, data, ckpt_path=None)
    assert list(splits) == data.split_names
    net.eval()
    for split, (x, y) in data.prepare().items():
        row = splits[split]
        assert row["n"] == len(y) and set(row["tasks"]) == set(data.label_names)
        with torch.no_grad():
            pred = net.predict_labels(net(x))
        names = data.label_classes
        for task in net.tasks:
            p = pred[task.head] if task.kind == "binary" else pred[task.head][:, task.unit]
            ref = score_task(p, y[:, task.column], class_names=names.get(task.name))
            got = row["tasks"][task.name]
            assert got["n"] == ref["n"] and got["loss_weight"] == task.loss_weight
            if not ref.get("no_labels"):
                assert got["f1"] == pytest.approx(ref["f1"], abs=1e-6)
                assert got["per_class"] == ref["per_class"]
        summary = summarize_tasks(row["tasks"])
        assert {k: row[k] for k in summary} == pytest.approx(summary, nan_ok=True)


def test_a_tasks_evaluation_cost_is_its_training_cost_over_the_split():
    from mlstrategy.metrics.tasks import TaskScores

    net, x, y = _model_and_data()
    with torch.no_grad():
        out = net(x)
        training = net.task_costs(out, y)  # the whole split as one batch
        per_task = net.task_outputs(out)
    for task in net.tasks:
        scores = TaskScores(task.kind, task.num_classes, task.class_column)
        for start in range(0, len(x), 32):  # batch by batch, as in evaluation
            rows = slice(start, start + 32)
            scores.update(per_task[task.name][rows], y[rows, task.column])
        evaluated = scores.compute()["loss"]
        assert evaluated == pytest.approx(training[task.name].item(), rel=1e-5), task.name
