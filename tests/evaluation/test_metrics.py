"""Every metric against scikit-learn on the same predictions (the reference implementation)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

from mlstrategy.metrics.classification import (
    classification_metrics,
    per_class_metrics,
    per_class_table,
    score_predictions,
)


def _sk(y, p, **kw):
    with warnings.catch_warnings():  # 0/0 is 0 in both; scikit-learn also warns
        warnings.simplefilter("ignore")
        return precision_recall_fscore_support(y, p, zero_division=0, **kw)


def _cases():
    rng = np.random.default_rng(0)
    y10 = rng.integers(0, 4, 200)
    p10 = np.where(rng.random(200) < 0.6, y10, rng.integers(0, 4, 200))
    return {
        "binary": (2, rng.integers(0, 2, 101), rng.integers(0, 2, 101)),
        "multiclass": (4, y10, p10),
        # class 3 is never a true label but is predicted; class 4 appears nowhere
        "absent_class": (5, np.array([0, 1, 2, 0, 1, 2, 0]), np.array([0, 3, 2, 0, 1, 1, 3])),
        "all_one_class_binary": (2, np.array([0, 1, 1, 0, 1]), np.zeros(5, dtype=int)),
        "all_one_class_multi": (3, np.array([0, 1, 2, 2, 1]), np.full(5, 2)),
        "binary_no_positives_at_all": (2, np.zeros(6, dtype=int), np.zeros(6, dtype=int)),
    }


CASES = _cases()


@pytest.mark.parametrize("case", list(CASES))
def test_scalars_equal_scikit_learn(case):
    k, y, p = CASES[case]
    out = classification_metrics(k)(torch.from_numpy(p), torch.from_numpy(y))
    assert float(out["accuracy"]) == pytest.approx(accuracy_score(y, p), abs=1e-6)
    if k == 2:
        prec, rec, f1, _ = _sk(y, p, average="binary")
        assert float(out["precision"]) == pytest.approx(prec, abs=1e-6)
        assert float(out["recall"]) == pytest.approx(rec, abs=1e-6)
        assert float(out["f1"]) == pytest.approx(f1, abs=1e-6)
        assert "f1_macro" not in out
    else:
        for average in ("micro", "macro", "weighted"):
            prec, rec, f1, _ = _sk(y, p, average=average)
            assert float(out[f"precision_{average}"]) == pytest.approx(prec, abs=1e-6), average
            assert float(out[f"recall_{average}"]) == pytest.approx(rec, abs=1e-6), average
            assert float(out[f"f1_{average}"]) == pytest.approx(f1, abs=1e-6), average
        # The headline multi-class scores are the macro averages.
        assert float(out["f1"]) == float(out["f1_macro"])


@pytest.mark.parametrize("case", list(CASES))
def test_per_class_and_confusion_matrix_equal_scikit_learn(case):
    k, y, p = CASES[case]
    out = per_class_metrics(k)(torch.from_numpy(p), torch.from_numpy(y))
    prec, rec, f1, support = _sk(y, p, labels=list(range(k)), average=None)
    np.testing.assert_allclose(out["precision"].numpy(), prec, atol=1e-6)
    np.testing.assert_allclose(out["recall"].numpy(), rec, atol=1e-6)
    np.testing.assert_allclose(out["f1"].numpy(), f1, atol=1e-6)
    cm = confusion_matrix(y, p, labels=list(range(k)))
    np.testing.assert_array_equal(out["confusion_matrix"].numpy(), cm)
    table = per_class_table(out)
    assert [row["support"] for row in table.values()] == support.tolist()


def test_accumulating_batches_equals_scoring_the_whole_split():
    k, y, p = CASES["multiclass"]
    whole = classification_metrics(k)(torch.from_numpy(p), torch.from_numpy(y))
    batched = classification_metrics(k)
    for start in range(0, len(y), 37):  # uneven batches: a mean of batch scores would differ
        batched.update(
            torch.from_numpy(p[start : start + 37]), torch.from_numpy(y[start : start + 37])
        )
    for key, value in batched.compute().items():
        assert float(value) == pytest.approx(float(whole[key]), abs=1e-6), key


def test_score_predictions_names_classes_and_reports_error():
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    p = torch.tensor([0, 2, 2, 2, 1, 1])
    s = score_predictions(p, y, 3, class_names=["cat", "dog", "emu"])
    assert s["error"] == pytest.approx(2 / 6)
    assert list(s["per_class"]) == ["cat", "dog", "emu"]
    assert s["per_class"]["emu"] == {
        "precision": 0.6667,
        "recall": 1.0,
        "f1": 0.8,
        "support": 2,
        # one-vs-rest: one of the 4 non-emus called emu, no emu missed
        "fp": 1,
        "fn": 0,
        "fp_rate": 0.25,
        "fn_rate": 0.0,
    }
    assert s["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [0, 0, 2]]


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="at least 2"):
        classification_metrics(1)
    with pytest.raises(ValueError, match="at least 2"):
        per_class_metrics(0)
    out = per_class_metrics(2)(torch.tensor([0, 1]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="3 class names for 2 classes"):
        per_class_table(out, ["a", "b", "c"])


@pytest.mark.filterwarnings("ignore:.*val_dataloader.*")
def test_evaluate_splits_scores_every_split_of_a_classifier_as_scikit_learn_does(tmp_path):
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from scipy.special import log_softmax
    from sklearn.metrics import f1_score

    from mlstrategy.data import ArrayDataModule, Digits
    from mlstrategy.evaluation.scoring import SplitScorer, evaluate_splits
    from mlstrategy.models import SoftmaxRegression

    L.seed_everything(0, verbose=False)
    data = ArrayDataModule(Digits(), batch_size=64, eval_batch_size=50, train_dev_fraction=0.1)
    model = SoftmaxRegression(data.input_shape, data.num_classes, learning_rate=0.05)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor="cost/dev")
    trainer = L.Trainer(max_epochs=2, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[checkpoint])  # fmt: skip
    trainer.fit(model, datamodule=data)
    before = dict(vars(model))
    splits = evaluate_splits(trainer, model, data, ckpt_path=checkpoint.best_model_path)
    assert list(splits) == data.split_names == ["train", "train_dev", "dev", "test"]
    model.eval()
    for split, (x, y) in data.prepare().items():
        with torch.no_grad():  # the best checkpoint's weights, which trainer.test loaded
            logits = model(x).double().numpy()
        p, row = logits.argmax(1), splits[split]
        # -1/m sum log a_y, in float64 (log_loss would clip the confident mistakes).
        cost = -log_softmax(logits, axis=1)[np.arange(len(y)), y.numpy()].mean()
        assert row["n"] == len(y)
        assert row["error"] == pytest.approx(1 - accuracy_score(y, p), abs=1e-6)
        assert row["f1_weighted"] == pytest.approx(f1_score(y, p, average="weighted"), abs=1e-5)
        assert row["loss"] == pytest.approx(cost, rel=1e-5)
        assert row["confusion_matrix"] == confusion_matrix(y, p, labels=range(10)).tolist()
        assert list(row["per_class"]) == [str(k) for k in range(10)]
    # Results come back from the function alone: nothing left on the model or the trainer.
    assert set(vars(model)) == set(before)
    assert not any(isinstance(c, SplitScorer) for c in trainer.callbacks)


@pytest.mark.filterwarnings("ignore:.*val_dataloader.*")
def test_a_split_scorer_on_a_plain_test_names_classes_from_the_data_module():
    import lightning as L

    from mlstrategy.data import ArrayDataModule, BreastCancer
    from mlstrategy.evaluation.scoring import SplitScorer
    from mlstrategy.models import LogisticRegression

    data = ArrayDataModule(BreastCancer(), batch_size=None)
    scorer = SplitScorer("test")
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[scorer])  # fmt: skip
    logged = trainer.test(LogisticRegression((30,), 2), datamodule=data, verbose=False)[0]
    assert list(scorer.details["per_class"]) == list(data.class_names)
    assert logged["test/error"] == pytest.approx(scorer.summary["error"])
    assert scorer.row["confusion_matrix"] == scorer.details["confusion_matrix"]
