"""Image folders on a par with in-memory data: a train-dev split, the error analysis and its
sheets, the dev/test distribution check and `learning-curve`, read through one interface
(mlstrategy.data.protocol.EvaluationData)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_recipe
from mlstrategy.cli import main
from mlstrategy.data import ArrayDataModule, DigitImages, ImageFolderDataModule
from mlstrategy.data.images import write_image_folder
from mlstrategy.data.protocol import EvaluationData, InMemorySplits, evaluation_data
from mlstrategy.run_folder import DIAGNOSIS_FILE, ERRORS_FIGURE, ERRORS_FILE, METRICS_FILE
from mlstrategy.runs.learning_curve import train_subset


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 images of each of three digits, 8x8 PNGs, one folder per class."""
    arrays = DigitImages(size=8, classes=[1, 7, 9]).load(0)
    return write_image_folder(arrays, tmp_path_factory.mktemp("digits"), limit_per_class=12)


def _module(root: Path | str, **kwargs) -> ImageFolderDataModule:
    kwargs = {"image_size": 8, "resize_size": 8, "num_workers": 0, **kwargs}
    return ImageFolderDataModule(str(root), **kwargs)


# ------------------------------------------------------------------------------- train-dev
def test_train_dev_is_a_stratified_seeded_share_of_train_and_leaves_dev_and_test(folder):
    plain = _module(folder).split_files()
    dm = _module(folder, train_dev_fraction=0.25)
    found = dm.split_files()
    assert list(found) == dm.split_names == ["train", "train_dev", "dev", "test"]
    # round(0.25 * 36) images, 3 of each class; taken from train only, dev and test unchanged.
    assert len(found["train_dev"][0]) == 9
    assert np.bincount(found["train_dev"][1]).tolist() == [3, 3, 3]
    assert found["dev"] == plain["dev"] and found["test"] == plain["test"]
    train, train_dev = set(found["train"][0]), set(found["train_dev"][0])
    assert not train & train_dev and train | train_dev == set(plain["train"][0])
    assert dm.split_size("train") == 36 - 9 - 7 - 7
    again = _module(folder, train_dev_fraction=0.25).split_files()
    other = _module(folder, train_dev_fraction=0.25, seed=1).split_files()
    assert again["train_dev"] == found["train_dev"] and other["train_dev"] != found["train_dev"]


def test_train_dev_of_split_folders_comes_from_the_train_folder(tmp_path, folder):
    import shutil

    for split in ("train", "dev", "test"):
        shutil.copytree(folder, tmp_path / split)
    found = _module(tmp_path, train_dev_fraction=0.2).split_files()
    assert {k: len(v[0]) for k, v in found.items()} == {
        "train": 36 - 7,
        "train_dev": 7,
        "dev": 36,
        "test": 36,
    }
    assert all(tmp_path / "train" in Path(f).parents for f in found["train_dev"][0])


def test_train_dev_is_evaluated_unaugmented_like_dev(folder):
    from mlstrategy.data.images import read_image

    dm = _module(folder, train_dev_fraction=0.25, augment=True, resize_size=10)
    files = dm.split_files()["train_dev"][0]
    transform = dm.eval_transform()
    expected = torch.stack([transform(read_image(f)) for f in files])
    for _ in range(2):  # no random draw: the same images each time
        x = torch.cat([x for x, _ in dm.eval_dataloader("train_dev")])
        torch.testing.assert_close(x, expected)
    torch.testing.assert_close(dm.split_examples("train_dev", [4, 0]), expected[[4, 0]])


def test_a_bad_train_dev_fraction_names_the_range():
    with pytest.raises(ValueError, match=r"train_dev_fraction=1.0 is outside \[0, 1\)"):
        ImageFolderDataModule("anywhere", train_dev_fraction=1.0)


# -------------------------------------------------------------------------------- protocol
def test_folders_and_arrays_answer_the_same_questions(folder):
    images = _module(folder)
    arrays = ArrayDataModule(DigitImages(size=8, classes=[1, 7, 9]), seed=0)
    assert evaluation_data(images) is images
    wrapped = evaluation_data(arrays)
    assert isinstance(wrapped, InMemorySplits) and isinstance(wrapped, EvaluationData)
    assert evaluation_data(object()) is None
    for data in (images, wrapped):
        assert data is not None
        for split in data.split_names:
            batches = list(data.eval_dataloader(split))
            y = torch.cat([y for _, y in batches])
            assert torch.equal(data.split_labels(split), y)
            assert data.split_size(split) == len(y)
            rows = [len(y) - 1, 0]
            x = torch.cat([x for x, _ in batches])
            torch.testing.assert_close(data.split_examples(split, rows), x[rows])
    y_dev = arrays.prepare()["dev"][1]
    assert torch.equal(wrapped.split_labels("dev"), y_dev)
    assert images.distribution_features(images.split_examples("dev", [0])).shape == (1, 6)
    assert wrapped.example_files("dev") is None
    assert images.example_files("dev") == images.split_files()["dev"][0]


def test_learning_curve_subsets_are_nested_stratified_and_what_training_sees(folder):
    kept = {}
    for fraction in (0.5, 1.0):
        dm = _module(folder)
        full = dm.split_files()["train"]
        train_subset(fraction)(dm)
        kept[fraction] = dm.split_files()["train"]
        assert dm.split_size("train") == round(fraction * len(full[0]))
        loader = dm.train_dataloader()
        assert len(loader.dataset) == dm.split_size("train")  # what training sees
    assert set(kept[0.5][0]) < set(kept[1.0][0]) == set(full[0])
    half, whole = np.bincount(kept[0.5][1]), np.bincount(full[1])
    assert np.abs(half - whole / 2).max() <= 1 and half.sum() == 11  # stratified
    # In memory, the rows each split came from follow the subset.
    arrays = ArrayDataModule(DigitImages(size=8, classes=[1, 7, 9]), seed=0)
    arrays.prepare()
    rows = arrays.split_indices["train"].copy()
    train_subset(0.5)(arrays)
    kept_rows = arrays.split_indices["train"]
    assert len(kept_rows) == len(arrays.prepare()["train"][1]) == round(0.5 * len(rows))
    assert set(kept_rows.tolist()) <= set(rows.tolist())


# ------------------------------------------------------------------------- the CLI, end to end
def _recipe(root: Path, name: str = "folder.yaml") -> Path:
    return write_recipe(
        root / name,
        model={"class_path": "mlstrategy.models.ConvNet", "init_args": {"channels": [4]}},
        data={
            "class_path": "mlstrategy.data.ImageFolderDataModule",
            "init_args": {
                "root": "digits",
                "image_size": 8,
                "resize_size": 8,
                "augment": False,
                "num_workers": 0,
                "batch_size": 8,
                "train_dev_fraction": 0.25,
            },
        },
        trainer={"max_epochs": 2},
    )


def _dev_predictions(run_dir: Path, dm: ImageFolderDataModule) -> tuple[np.ndarray, np.ndarray]:
    """The best checkpoint's predictions and losses on each dev image, decoded one by one."""
    from mlstrategy.data.images import read_image
    from mlstrategy.models import ConvNet

    ckpt = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    model = ConvNet(**{k: v for k, v in ckpt["hyper_parameters"].items() if k[0] != "_"})
    model.load_state_dict(ckpt["state_dict"])
    files, labels = dm.split_files()["dev"]
    transform = dm.eval_transform()
    with torch.no_grad():
        logits = model.eval()(torch.stack([transform(read_image(f)) for f in files]))
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(labels), reduction="none")
    return logits.argmax(1).numpy(), loss.numpy()


@pytest.mark.slow
def test_an_image_folder_recipe_gets_a_curve_train_dev_distributions_and_errors(in_tmp):
    write_image_folder(DigitImages(size=8, classes=[1, 7, 9]).load(0), in_tmp / "digits", 12)
    recipe = _recipe(in_tmp)
    dm = _module("digits", train_dev_fraction=0.25)
    files = dm.split_files()

    # `learning-curve`: a run per size on nested subsets of train; train-dev and dev whole.
    assert main(["learning-curve", str(recipe), "--sizes", "0.5,1"]) == 0
    (curve_file,) = (in_tmp / "logs").rglob("learning_curve.json")
    points = json.loads(curve_file.read_text())["points"]
    assert [p["m"] for p in points] == [round(0.5 * 13), 13]
    for p in points:
        scored = json.loads((Path(p["run_dir"]) / METRICS_FILE).read_text())["splits"]
        assert scored["train"]["n"] == p["m"] and scored["train"]["error"] == p["train_error"]
        assert scored["train_dev"]["n"] == 9 and scored["dev"]["n"] == 7
        assert scored["dev"]["error"] == p["dev_error"]

    # The whole train split's run, as `mlstrategy run` makes it: train-dev scored on its own
    # images, and the diagnosis splits variance from mismatch.
    run_dir = Path(points[-1]["run_dir"])
    splits = json.loads((run_dir / METRICS_FILE).read_text())["splits"]
    diagnosis = json.loads((run_dir / DIAGNOSIS_FILE).read_text())
    assert list(splits) == ["train", "train_dev", "dev", "test"]
    assert splits["train_dev"]["n"] == len(files["train_dev"][0]) == 9
    assert splits["train"]["n"] == len(files["train"][0]) == 13
    err = {s: splits[s]["error"] for s in splits}
    assert diagnosis["train_dev_error"] == pytest.approx(err["train_dev"])
    assert diagnosis["variance"] == pytest.approx(err["train_dev"] - err["train"])
    assert diagnosis["data_mismatch"] == pytest.approx(err["dev"] - err["train_dev"])

    # The distribution check: dev and test label mixes, and train told from dev too.
    same = diagnosis["same_distribution"]
    for split in ("dev", "test"):
        counts = np.bincount(files[split][1], minlength=3)
        assert same[f"{split}_labels"] == pytest.approx(counts / counts.sum(), abs=1e-4)
    assert set(same["domain"]) == {"dev_test", "train_dev"}
    assert same["worst_feature_name"].split(" of channel ")[0] in ("mean", "std")

    # `errors`: one row per misclassified dev image, the checkpoint's own predictions.
    assert main(["errors", str(run_dir)]) == 0
    with (run_dir / ERRORS_FILE).open() as f:
        rows = list(csv.DictReader(f))
    predicted, loss = _dev_predictions(run_dir, dm)
    labels = np.asarray(files["dev"][1])
    wrong = np.flatnonzero(predicted != labels)
    assert sorted(int(r["index"]) for r in rows) == wrong.tolist()
    names = dm.class_names
    for r in rows:
        i = int(r["index"])
        assert r["input"] == str(files["dev"][0][i])
        assert (r["true"], r["predicted"]) == (names[labels[i]], names[predicted[i]])
        assert float(r["loss"]) == pytest.approx(loss[i], abs=1e-3)
    losses = [float(r["loss"]) for r in rows]
    assert losses == sorted(losses, reverse=True)
    assert (run_dir / ERRORS_FIGURE).is_file() == bool(rows)


def test_a_mismatch_folder_s_subset_keeps_each_image_s_origin(tmp_path):
    from mlstrategy.data import MismatchImageFolderDataModule
    from mlstrategy.data.mismatch import SOURCE

    root = write_image_folder(DigitImages(size=8, classes=[0, 1]).load(0), tmp_path / "web", 12)
    target = write_image_folder(DigitImages(size=8, classes=[0, 1]).load(0), tmp_path / "app", 20)
    dm = MismatchImageFolderDataModule(
        str(root), str(target), target_in_train=10, image_size=8, resize_size=8, num_workers=0
    )
    train_subset(0.5)(dm)
    files = dm.split_files()["train"][0]
    from_source = [Path(f).is_relative_to(root) for f in files]
    assert len(files) == len(dm.origin["train"])
    assert from_source == (dm.origin["train"] == SOURCE).tolist()
    assert dm.split_origins()["train"] == {
        "source": sum(from_source),
        "target": len(files) - sum(from_source),
    }
