"""evaluate_splits on data without a test split, and on the splits it is asked for only."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from sklearn.metrics import accuracy_score

from mlstrategy.data import ArrayDataModule, BreastCancer
from mlstrategy.evaluation.scoring import evaluate_splits
from mlstrategy.models import LogisticRegression


def _fit(tmp_path, test_fraction):
    L.seed_everything(0, verbose=False)
    data = ArrayDataModule(BreastCancer(), batch_size=None, test_fraction=test_fraction)
    model = LogisticRegression(data.input_shape, data.num_classes, learning_rate=0.5)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor="cost/dev")
    trainer = L.Trainer(max_epochs=3, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[checkpoint])  # fmt: skip
    trainer.fit(model, datamodule=data)
    return trainer, model, data, checkpoint.best_model_path


def _errors_of_checkpoint(path, data):
    """Each split's error of the checkpoint's weights: a plain forward pass, then sklearn."""
    model = LogisticRegression.load_from_checkpoint(path, weights_only=True).eval()
    errors = {}
    for split, (x, y) in data.prepare().items():
        with torch.no_grad():
            p = model.predict_proba(model(x)).argmax(1).numpy()
        errors[split] = 1 - accuracy_score(y.numpy(), p)
    return errors


@pytest.mark.filterwarnings("ignore:.*val_dataloader.*")
def test_data_without_a_test_split_is_scored_on_the_rest_with_the_checkpoints_weights(tmp_path):
    trainer, model, data, best = _fit(tmp_path, test_fraction=None)
    assert data.split_names == ["train", "dev"]
    with torch.no_grad():  # weights that are not the checkpoint's: the first split loads it
        for p in model.parameters():
            p.zero_()
    splits = evaluate_splits(trainer, model, data, ckpt_path=best)
    assert list(splits) == ["train", "dev"]
    reference = _errors_of_checkpoint(best, data)
    for split, row in splits.items():
        assert row["n"] == len(data.prepare()[split][1])
        assert row["error"] == pytest.approx(reference[split], abs=1e-6)


@pytest.mark.filterwarnings("ignore:.*val_dataloader.*")
def test_only_scores_the_splits_it_names_and_refuses_a_missing_one(tmp_path):
    trainer, model, data, best = _fit(tmp_path, test_fraction=0.2)
    splits = evaluate_splits(trainer, model, data, ckpt_path=best, only=["test"])
    assert list(splits) == ["test"]
    assert splits["test"]["error"] == pytest.approx(_errors_of_checkpoint(best, data)["test"])
    with pytest.raises(ValueError, match="No 'train_dev' split to score"):
        evaluate_splits(trainer, model, data, ckpt_path=best, only=["train_dev"])
