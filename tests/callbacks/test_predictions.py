"""PredictionsCSV: the layout of ``mlstrategy predict RUN_DIR`` (id, predicted, p_<class>,
true, correct), one row per predicted example, under its own name in the run folder, written
once and atomically."""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mlstrategy.callbacks.predictions import PredictionsCSV
from mlstrategy.data import ArrayDataModule, Digits
from mlstrategy.models import SoftmaxRegression


def test_rows_hold_each_examples_class_probabilities_and_label(tmp_path):
    torch.manual_seed(0)
    data = ArrayDataModule(Digits(), eval_batch_size=100, seed=0)
    model = SoftmaxRegression(data.input_shape, data.num_classes)
    writer = PredictionsCSV()
    trainer = L.Trainer(
        logger=False, enable_progress_bar=False, callbacks=[writer], default_root_dir=tmp_path
    )
    batches = trainer.predict(model, datamodule=data)
    probabilities = torch.cat(batches)  # 360 test digits in 4 batches of up to 100
    assert writer.written == tmp_path / "lightning_predictions.csv"
    assert [p.name for p in tmp_path.iterdir()] == ["lightning_predictions.csv"]  # no temp file
    with writer.written.open() as f:
        rows = list(csv.DictReader(f))
    names = data.class_names
    assert list(rows[0]) == ["id", "predicted", *(f"p_{c}" for c in names), "true", "correct"]
    assert len(rows) == len(probabilities) == len(data.prepare()["test"][1])
    assert [r["id"] for r in rows] == [str(i) for i in range(len(probabilities))]
    label = probabilities.argmax(dim=1)
    assert [r["predicted"] for r in rows] == [names[k] for k in label.tolist()]
    got = torch.tensor([[float(r[f"p_{c}"]) for c in names] for r in rows])
    torch.testing.assert_close(got, probabilities, atol=1e-6, rtol=0)
    truth = data.prepare()["test"][1]
    assert [r["true"] for r in rows] == [names[k] for k in truth.tolist()]
    assert [r["correct"] == "true" for r in rows] == (label == truth).tolist()


def test_unlabelled_examples_get_no_true_or_correct_column(tmp_path):
    class Unlabelled(ArrayDataModule):
        def predict_dataloader(self):
            x = self.prepare()["test"][0][:7]  # images of a predict_dir are labelled -1:
            return DataLoader(TensorDataset(x, torch.full((7,), -1)), batch_size=4)

    data = Unlabelled(Digits())
    model = SoftmaxRegression(data.input_shape, data.num_classes)
    path = tmp_path / "p.csv"
    trainer = L.Trainer(logger=False, enable_progress_bar=False, callbacks=[PredictionsCSV(path)])
    trainer.predict(model, datamodule=data)
    with path.open() as f:
        header = next(csv.reader(f))
    assert header == ["id", "predicted", *(f"p_{c}" for c in data.class_names)]
    assert path.read_text().count("\n") == 8


@pytest.mark.parametrize("prediction", [torch.zeros(3), {"car": torch.zeros(3, 2)}])
def test_what_is_not_a_probability_table_writes_nothing(tmp_path, prediction):
    writer = PredictionsCSV(tmp_path / "p.csv")
    writer.on_predict_start(None, None)  # type: ignore[arg-type]
    writer.write_on_batch_end(None, None, prediction, None, None, 0, 0)  # type: ignore[arg-type]
    writer.on_predict_end(None, None)  # type: ignore[arg-type]
    assert writer.written is None and not (tmp_path / "p.csv").exists()
