"""Two distributions in one data module: dev and test from the target only, train-dev from the
training mix, seeded disjoint splits, normalization from the mix, and bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_recipe
from mlstrategy.cli import main
from mlstrategy.data import (
    DigitImages,
    MismatchDataModule,
    MismatchImageFolderDataModule,
    PhoneDigits,
    TargetNoise,
)
from mlstrategy.data.images import write_image_folder
from mlstrategy.data.sources import Arrays, ArraySource

SOURCE = PhoneDigits(half="first", clean=True)
TARGET = PhoneDigits(half="second")


def _module(**kwargs) -> MismatchDataModule:
    args = {"target_in_train": 200, "train_dev_fraction": 0.1, "seed": 0, **kwargs}
    return MismatchDataModule(SOURCE, TARGET, **args)


class _Labelled(ArraySource):
    """A few seeded rows per class, with the given class names."""

    def __init__(self, names: list[str], per_class: int = 10, features: int = 3) -> None:
        self.names = names
        self.per_class = per_class
        self.features = features

    def load(self, seed: int) -> Arrays:
        y = np.repeat(np.arange(len(self.names)), self.per_class)
        x = np.random.default_rng(seed).normal(size=(len(y), self.features)).astype(np.float32)
        return Arrays(x=x, y=y.astype(np.int64), class_names=list(self.names))


def test_dev_and_test_hold_only_target_examples_and_train_dev_only_the_mix():
    dm = _module()
    splits = dm.prepare()
    assert list(splits) == ["train", "train_dev", "dev", "test"]
    target = TARGET.load(0)
    for split in ("dev", "test"):
        assert set(dm.origin[split]) == {"target"}
        # The rows recorded are the target's: the examples are exactly those rows.
        assert torch.equal(splits[split][0], torch.from_numpy(target.x[dm.rows[split]]))
    origins = dm.split_origins()
    assert origins["dev"] == {"source": 0, "target": 180}
    assert origins["test"] == {"source": 0, "target": 180}
    # The training mix: every source example and the 200 target ones, in train or train-dev.
    assert origins["train"]["source"] + origins["train_dev"]["source"] == len(SOURCE.load(0).y)
    assert origins["train"]["target"] + origins["train_dev"]["target"] == 200
    # Train-dev is stratified by source too: its share of target examples is the mix's.
    share = origins["train_dev"]["target"] / sum(origins["train_dev"].values())
    assert share == pytest.approx(200 / (200 + 896), abs=0.02)
    source = SOURCE.load(0)
    for split in ("train", "train_dev"):
        from_source = dm.origin[split] == "source"
        expected = source.x[dm.rows[split][from_source]]
        assert torch.equal(
            splits[split][0][torch.from_numpy(from_source)], torch.from_numpy(expected)
        )


def test_splits_are_disjoint_cover_the_data_and_follow_the_seed():
    dm = _module()
    dm.prepare()
    used = {
        origin: [set(dm.rows[s][dm.origin[s] == origin].tolist()) for s in dm.rows]
        for origin in ("source", "target")
    }
    for sets in used.values():
        assert sum(len(s) for s in sets) == len(set().union(*sets))  # disjoint
    assert set().union(*used["source"]) == set(range(896))
    assert len(set().union(*used["target"])) == 180 + 180 + 200
    again, other = _module(), _module(seed=1)
    again.prepare()
    other.prepare()
    for split in dm.rows:
        assert np.array_equal(dm.rows[split], again.rows[split])
    assert not np.array_equal(dm.rows["dev"], other.rows["dev"])
    assert not np.array_equal(dm.rows["train_dev"], other.rows["train_dev"])


def test_target_in_train_as_a_fraction_of_the_target():
    dm = _module(target_in_train=0.25)
    origins = dm.split_origins()
    assert origins["train"]["target"] + origins["train_dev"]["target"] == round(0.25 * 901)


def test_normalization_comes_from_the_training_mix_only():
    dm = _module(normalize=True)
    source, target = SOURCE.load(0), TARGET.load(0)
    train = dm.prepare()["train"]
    is_target = dm.origin["train"] == "target"
    rows = dm.rows["train"]
    mix = np.concatenate([source.x[rows[~is_target]], target.x[rows[is_target]]])
    norm = dm.input_normalizer()
    assert norm is not None
    np.testing.assert_allclose(norm.mean.numpy(), mix.mean(axis=0), atol=1e-6)
    std = mix.std(axis=0)  # NumPy's default is 1/m, the course's sigma^2
    np.testing.assert_allclose(norm.std.numpy(), np.where(std > 1e-8, std, 1.0), atol=1e-5)
    assert len(train[0]) == len(mix)
    # Not the statistics of everything: dev and test (phone digits) are darker on the border.
    everything = torch.cat([x for x, _ in dm.prepare().values()])
    assert not torch.allclose(norm.mean, everything.mean(dim=0), atol=1e-3)


def test_synthesis_changes_source_rows_only_and_fits_outside_dev_and_test():
    dm = _module(synthesis=[TargetNoise(clips=50)], normalize=False)
    splits = dm.prepare()
    x = splits["train"][0][:64]
    is_target = torch.from_numpy(dm.origin["train"][:64] == "target")
    made = dm._synthesize(x, is_target)
    assert torch.equal(made[is_target], x[is_target])
    assert not torch.equal(made[~is_target], x[~is_target])
    # Train and train-dev are scored on a fixed synthesized copy; dev and test never change.
    dm.setup("fit")
    first = next(iter(dm.eval_dataloader("train_dev")))[0]
    assert not torch.equal(first, splits["train_dev"][0][: len(first)])
    assert torch.equal(next(iter(dm.eval_dataloader("dev")))[0], splits["dev"][0])
    report = dm.describe_sources()["synthesis"]
    assert report["synthesized"] == dm.split_origins()["train"]["source"]
    assert report["warnings"]  # 50 clips for ~800 examples


def test_image_folders_with_a_target_root(tmp_path: Path):
    root = write_image_folder(DigitImages(size=8, classes=[0, 1]).load(0), tmp_path / "web", 12)
    target = write_image_folder(DigitImages(size=8, classes=[0, 1]).load(0), tmp_path / "app", 20)
    dm = MismatchImageFolderDataModule(
        str(root), str(target), target_in_train=10, dev_fraction=0.25, test_fraction=0.25,
        train_dev_fraction=0.2, image_size=8, resize_size=8, num_workers=0,
    )  # fmt: skip
    files = dm.split_files()
    assert list(files) == ["train", "train_dev", "dev", "test"]
    for split in ("dev", "test"):
        assert all(str(f).startswith(str(target)) for f in files[split][0])
    mix = files["train"][0] + files["train_dev"][0]
    assert sum(str(f).startswith(str(root)) for f in mix) == 24
    assert sum(str(f).startswith(str(target)) for f in mix) == 10
    assert len(set(mix) | set(files["dev"][0]) | set(files["test"][0])) == 24 + 10 + 20
    (target / "7").mkdir()
    (target / "7" / "a.png").write_bytes((target / "0" / "00000.png").read_bytes())
    bad = MismatchImageFolderDataModule(str(root), str(target), image_size=8, resize_size=8)
    with pytest.raises(ValueError, match=r"only the target has \['7'\]"):
        bad.split_files()


def test_classes_that_differ_are_named_on_each_side():
    dm = MismatchDataModule(_Labelled(["cat", "dog"]), _Labelled(["cat", "bird"]))
    with pytest.raises(ValueError, match=r"only the source has \['dog'\], only the target has "):
        dm.prepare()


def test_a_target_of_another_shape_is_refused_by_name():
    dm = MismatchDataModule(_Labelled(["a", "b"]), _Labelled(["a", "b"], features=4))
    with pytest.raises(ValueError, match=r"shape \(3,\) but the target .* \(4,\)"):
        dm.prepare()


def test_target_in_train_beyond_what_dev_and_test_leave():
    dm = MismatchDataModule(_Labelled(["a", "b"]), _Labelled(["a", "b"]), target_in_train=13)
    with pytest.raises(ValueError, match=r"leaving 12\. Give at most 12"):
        dm.prepare()
    with pytest.raises(ValueError, match=r"in \[0, 1\); give a count as an integer"):
        MismatchDataModule(_Labelled(["a"]), _Labelled(["a"]), target_in_train=1.5)


def test_a_target_too_small_for_dev_and_test_to_hold_every_class():
    dm = MismatchDataModule(_Labelled(["a", "b", "c"]), _Labelled(["a", "b", "c"], per_class=2))
    with pytest.raises(ValueError, match="too small for dev and test splits that hold every class"):
        dm.prepare()


def test_bad_target_is_exit_2_with_one_paragraph(in_tmp, capsys):
    source = {"class_path": "mlstrategy.data.PhoneDigits", "init_args": {"clean": True}}
    target = {"class_path": "mlstrategy.data.PhoneDigits", "init_args": {"half": "second"}}
    recipe = write_recipe(
        in_tmp / "bad.yaml",
        model={"class_path": "mlstrategy.models.SoftmaxRegression"},
        data={
            "class_path": "mlstrategy.data.MismatchDataModule",
            "init_args": {"source": source, "target": target, "target_in_train": 600},
        },
    )
    assert main(["run", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "target_in_train=600 asks for 600 target examples" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_a_torchvision_synthesis_transform_draws_per_example_and_is_named_in_the_report():
    from torchvision.transforms import v2

    dm = _module(synthesis=[v2.GaussianBlur(kernel_size=3, sigma=(0.1, 2.0))], normalize=False)
    x = dm.prepare()["train"][0][:1].expand(16, -1, -1, -1)  # 16 copies of one digit
    torch.manual_seed(0)
    made = dm._synthesize(x, torch.zeros(16, dtype=torch.bool))
    assert len({tuple(row.flatten().tolist()) for row in made}) == 16  # a sigma each
    (row,) = dm.describe_sources()["synthesis"]["transforms"]
    assert row["transform"] == "GaussianBlur" and row["pool"] is None
