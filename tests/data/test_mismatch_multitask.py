"""Multi-task data from two distributions (MismatchMultiTaskDataModule): dev and test from the
target only, stratified on the first task, missing labels kept missing, normalization from the
training mix, mismatched label columns refused by name, and a run through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import write_recipe
from mlstrategy.cli import main
from mlstrategy.data import MismatchMultiTaskDataModule, StreetScenes
from mlstrategy.data.multitask import LabelledArrays, MultiTaskSource


class _Tasks(MultiTaskSource):
    """Seeded rows with a class column (a third missing) and a real column (some NaN); the
    ``shift`` moves the features: another distribution."""

    def __init__(self, n: int = 120, shift: float = 0.0, names: tuple = ("car", "size")) -> None:
        self.n, self.shift, self.names = n, shift, list(names)

    def load(self, seed: int) -> LabelledArrays:
        rng = np.random.default_rng([seed, int(self.shift * 10)])
        x = (rng.normal(size=(self.n, 3)) + self.shift).astype(np.float32)
        car = np.where(np.arange(self.n) % 3 == 0, -1.0, np.arange(self.n) % 2)
        size = np.where(np.arange(self.n) % 5 == 0, np.nan, x[:, 0])
        return LabelledArrays(
            x=x,
            y=np.stack([car, size], axis=1).astype(np.float32),
            label_names=self.names,
            class_names={self.names[0]: ["no", "yes"]},
        )


SOURCE, TARGET = _Tasks(200), _Tasks(100, shift=2.0)


def _module(**kwargs) -> MismatchMultiTaskDataModule:
    args = {"target_in_train": 20, "dev_fraction": 0.2, "test_fraction": 0.2, **kwargs}
    return MismatchMultiTaskDataModule(SOURCE, TARGET, **args)


def test_dev_and_test_are_target_rows_with_their_missing_labels_kept():
    dm = _module()
    splits = dm.prepare()
    assert list(splits) == ["train", "train_dev", "dev", "test"]
    target = TARGET.load(0)
    for split in ("dev", "test"):
        assert set(dm.origin[split]) == {"target"}
        x, y = splits[split]
        assert torch.equal(x, torch.from_numpy(target.x[dm.rows[split]]))
        # Missing labels stay missing (-1 and NaN), so the masked cost leaves them out.
        np.testing.assert_array_equal(y.numpy(), target.y[dm.rows[split]])
        assert (y[:, 0] == -1).any() and y[:, 1].isnan().any()
        # Stratified on the first task, missing its own stratum: the target's shares.
        counts = np.bincount((y[:, 0].numpy() + 1).astype(int), minlength=3)
        shares = np.bincount((target.y[:, 0] + 1).astype(int), minlength=3) / len(target.y)
        assert np.abs(counts - 20 * shares).max() < 1, (counts, 20 * shares)
    origins = dm.split_origins()
    assert origins["dev"] == {"source": 0, "target": 20}
    assert sum(origins[s]["target"] for s in ("train", "train_dev")) == 20
    assert sum(origins[s]["source"] for s in ("train", "train_dev")) == 200
    assert dm.num_classes == {"car": 2, "size": 0}
    assert dm.describe_sources()["target_in_train"] == 20


def test_splits_are_disjoint_and_follow_the_seed():
    dm = _module()
    dm.prepare()
    for origin in ("source", "target"):
        rows = [dm.rows[s][dm.origin[s] == origin].tolist() for s in dm.rows]
        assert sum(map(len, rows)) == len(set().union(*rows))
    again, other = _module(), _module(seed=1)
    again.prepare()
    other.prepare()
    assert all(np.array_equal(dm.rows[s], again.rows[s]) for s in dm.rows)
    assert not np.array_equal(dm.rows["dev"], other.rows["dev"])


def test_normalization_comes_from_the_training_mix_only():
    dm = _module(normalize=True)
    splits = dm.prepare()
    source, target = SOURCE.load(0), TARGET.load(0)
    is_target = dm.origin["train"] == "target"
    rows = dm.rows["train"]
    mix = np.concatenate([source.x[rows[~is_target]], target.x[rows[is_target]]])
    norm = dm.input_normalizer()
    assert norm is not None and len(splits["train"][0]) == len(mix)
    np.testing.assert_allclose(norm.mean.numpy(), mix.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(norm.std.numpy(), mix.std(axis=0), atol=1e-5)
    assert float(splits["dev"][0].mean()) > float(norm.mean.mean()) + 1  # the shifted target


def test_label_columns_or_classes_that_differ_are_refused_by_name():
    other = MismatchMultiTaskDataModule(SOURCE, _Tasks(100, names=("car", "weight")))
    with pytest.raises(ValueError, match=r"only the source has \['size'\], only the target has"):
        other.prepare()

    class _Colours(_Tasks):
        def load(self, seed: int) -> LabelledArrays:
            arrays = super().load(seed)
            arrays.class_names = {"car": ["red", "blue"]}
            return arrays

    with pytest.raises(ValueError, match=r"'car' has classes \['no', 'yes'\] in the source"):
        MismatchMultiTaskDataModule(SOURCE, _Colours(100)).prepare()
    with pytest.raises(ValueError, match=r"target_in_train=61 asks for 61 .* leaving 60"):
        _module(target_in_train=61).prepare()


@pytest.mark.slow
def test_a_multi_task_mismatch_run_reports_both_distributions(in_tmp):
    scenes = {"n_samples": 60, "image_size": 16, "missing_fraction": 0.3}
    recipe = write_recipe(
        in_tmp / "scenes.yaml",
        model={
            "class_path": "mlstrategy.models.MultiTaskNet",
            "init_args": {"heads": {"car": {"kind": "binary"}}, "trunk": "mlp", "layer_dims": [8]},
        },
        data={
            "class_path": "mlstrategy.data.MismatchMultiTaskDataModule",
            "init_args": {
                "source": {"class_path": "mlstrategy.data.StreetScenes", "init_args": scenes},
                "target": {
                    "class_path": "mlstrategy.data.StreetScenes",
                    "init_args": {**scenes, "noise": 0.3},
                },
                "target_in_train": 10,
                "batch_size": 32,
            },
        },
        trainer={"max_epochs": 1},
    )
    assert StreetScenes(**scenes).load(0).label_names[1] == "car"
    assert main(["run", str(recipe), "--evaluation.latency_repeats=2"]) == 0
    (path,) = in_tmp.glob("logs/**/diagnosis.json")
    sources = json.loads(path.read_text())["sources"]
    assert sources["splits"]["dev"] == {"source": 0, "target": 12}
    assert sources["target_in_train"] == 10
