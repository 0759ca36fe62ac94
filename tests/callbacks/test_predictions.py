"""PredictionsCSV: one row per predicted example, with the class name and its probability."""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch

from mlstrategy.callbacks.predictions import PredictionsCSV
from mlstrategy.data import ArrayDataModule, Digits
from mlstrategy.models import SoftmaxRegression


def test_rows_hold_each_examples_class_and_probability(tmp_path):
    torch.manual_seed(0)
    data = ArrayDataModule(Digits(), eval_batch_size=100, seed=0)
    model = SoftmaxRegression(data.input_shape, data.num_classes)
    writer = PredictionsCSV(tmp_path / "out" / "predictions.csv")
    trainer = L.Trainer(logger=False, enable_progress_bar=False, callbacks=[writer])
    batches = trainer.predict(model, datamodule=data)
    probabilities = torch.cat(batches)  # 360 test digits in 4 batches of up to 100
    with (tmp_path / "out" / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(probabilities) == len(data.prepare()["test"][1])
    assert [r["file"] for r in rows] == [str(i) for i in range(len(probabilities))]
    best, label = probabilities.max(dim=1)
    assert [r["class"] for r in rows] == [data.class_names[k] for k in label.tolist()]
    assert [float(r["probability"]) for r in rows] == pytest.approx(best.tolist(), abs=1e-6)
