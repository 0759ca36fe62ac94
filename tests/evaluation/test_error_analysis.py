"""Error analysis (confused pairs, highest-loss examples) and the dev/test distribution check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss

from mlstrategy.evaluation.distributions import compare_distributions
from mlstrategy.evaluation.error_analysis import example_losses, highest_loss, most_confused
from mlstrategy.models import LogisticRegression, SoftmaxRegression


def test_most_confused_orders_off_diagonal_cells_and_shares():
    cm = [[50, 2, 7], [0, 40, 1], [3, 0, 30]]
    pairs = most_confused(cm, ["a", "b", "c"], k=3)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("a", "c", 7),
        ("c", "a", 3),
        ("a", "b", 2),
    ]
    assert pairs[0]["share"] == pytest.approx(7 / 13, abs=1e-4)
    assert most_confused([[3, 0], [0, 4]], ["x", "y"]) == []


@pytest.mark.parametrize("num_classes", [2, 4])
def test_example_losses_match_scikit_learn_log_loss(num_classes):
    torch.manual_seed(0)
    model = (
        LogisticRegression(input_shape=(3,))
        if num_classes == 2
        else SoftmaxRegression(input_shape=(3,), num_classes=num_classes)
    )
    for p in model.net.parameters():  # the models start at zero; any weights will do
        torch.nn.init.normal_(p)
    x = torch.randn(40, 3)
    y = torch.arange(40) % num_classes
    model.train()
    losses, preds, p_true = example_losses(model, x, y, batch_size=16)
    assert model.training  # mode restored
    with torch.no_grad():
        proba = model.predict_proba(model(x)).numpy()
    expected = log_loss(y.numpy(), proba, labels=list(range(num_classes)))
    assert losses.mean().item() == pytest.approx(expected, rel=1e-5)
    np.testing.assert_array_equal(preds.numpy(), proba.argmax(1))
    np.testing.assert_allclose(p_true.numpy(), proba[np.arange(40), y.numpy()], rtol=1e-6)


def test_highest_loss_lists_the_worst_first():
    losses = torch.tensor([0.1, 3.0, 0.5, 2.0])
    rows = highest_loss(
        losses,
        torch.tensor([0, 0, 1, 0]),
        torch.tensor([0.9, 0.05, 0.6, 0.13]),
        torch.tensor([0, 1, 1, 1]),
        ["no", "yes"],
        k=2,
    )
    assert [r["index"] for r in rows] == [1, 3]
    assert rows[0] == {"index": 1, "true": "yes", "predicted": "no", "p_true": 0.05, "loss": 3.0}


def test_same_distribution_passes_for_a_random_split():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(1000, 5)), rng.integers(0, 3, 1000)
    out = compare_distributions((x[:500], y[:500]), (x[500:], y[500:]), 3)
    assert not out["differ"]
    assert out["labels_p"] > 0.01 and out["features_p"] > 0.01
    assert len(out["dev_labels"]) == 3 and sum(out["dev_labels"]) == pytest.approx(1, abs=1e-3)


def test_different_label_mix_is_flagged():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(600, 2))
    y_dev = (rng.random(300) < 0.5).astype(int)
    y_test = (rng.random(300) < 0.8).astype(int)
    out = compare_distributions((x[:300], y_dev), (x[300:], y_test), 2)
    assert out["differ"] and out["labels_p"] < 0.01
    assert "label proportions differ" in out["message"]


def test_shifted_feature_is_flagged_and_named():
    rng = np.random.default_rng(3)
    x_dev, x_test = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
    x_test[:, 2] += 0.5
    y = np.arange(300) % 2
    out = compare_distributions((x_dev, y), (x_test, y), 2)
    assert out["differ"] and out["worst_feature"] == 2
    assert "feature 2" in out["message"] and "one distribution" in out["message"]


def test_constant_features_do_not_divide_by_zero():
    x = np.zeros((20, 3))
    y = np.arange(20) % 2
    out = compare_distributions((x[:10], y[:10]), (x[10:], y[10:]), 2)
    assert not out["differ"] and out["worst_feature_z"] == 0.0


# ------------------------------------------------------------------- every kind of run analysed
def _image_split(root, arrays, rows, shift: float = 0.0):
    from mlstrategy.data import Arrays
    from mlstrategy.data.images import write_image_folder

    x = np.clip(arrays.x[rows] + shift, 0, 1)
    return write_image_folder(Arrays(x=x, y=arrays.y[rows], class_names=arrays.class_names), root)


@pytest.fixture
def image_folder(tmp_path):
    """train/, dev/ and test/ folders of three digits (36 images each: enough for the z test);
    the test images are brighter, a different distribution."""
    from mlstrategy.data import DigitImages

    arrays = DigitImages(size=12, classes=[1, 2, 3]).load(0)
    rows = {
        s: np.concatenate([np.flatnonzero(arrays.y == k)[i::3][:12] for k in range(3)])
        for i, s in enumerate(("train", "dev", "test"))
    }
    for split, index in rows.items():
        _image_split(tmp_path / split, arrays, index, shift=0.25 if split == "test" else 0.0)
    return tmp_path


def test_image_folder_analysis_lists_the_files_and_finds_the_brighter_test_set(image_folder):
    from sklearn.metrics import confusion_matrix

    from mlstrategy.data import ImageFolderDataModule
    from mlstrategy.data.images import read_image
    from mlstrategy.evaluation.error_analysis import analyze_errors
    from mlstrategy.models import ConvNet

    dm = ImageFolderDataModule(
        str(image_folder),
        image_size=12,
        resize_size=12,
        num_workers=0,
        eval_batch_size=7,
        augment=False,
    )
    torch.manual_seed(0)
    model = ConvNet(dm.input_shape, 3, channels=[4]).eval()
    # The reference: each dev file decoded on its own, its cross-entropy and prediction.
    files, labels = dm.split_files()["dev"]
    transform = dm.eval_transform()
    with torch.no_grad():
        logits = torch.cat([model(transform(read_image(f))[None]) for f in files])
    losses = torch.nn.functional.cross_entropy(logits, torch.tensor(labels), reduction="none")
    order = np.argsort(-losses.numpy(), kind="stable")[:10]
    cm = confusion_matrix(labels, logits.argmax(1).numpy(), labels=[0, 1, 2])

    out = analyze_errors(model, dm, {"dev": {"confusion_matrix": cm.tolist()}})
    worst = out["highest_loss"]
    assert [w["file"] for w in worst] == [str(files[i]) for i in order]
    assert [w["index"] for w in worst] == order.tolist()
    assert [w["loss"] for w in worst] == pytest.approx(losses[order].tolist(), abs=1e-3)
    assert all(Path(w["file"]).parent.name == w["true"] for w in worst)  # its class folder
    confused = {(p["true"], p["predicted"]): p["count"] for p in out["most_confused"]}
    off = {
        (dm.class_names[i], dm.class_names[j]): int(cm[i, j])
        for i in range(3)
        for j in range(3)
        if i != j and cm[i, j]
    }
    assert confused == dict(sorted(off.items(), key=lambda kv: -kv[1])[:5])
    assert out["highest_loss_x"].shape == (10, 3, 12, 12)
    first = transform(read_image(files[order[0]])).numpy()
    np.testing.assert_allclose(out["highest_loss_x"][0], first)
    same = out["same_distribution"]
    assert same["dev_labels"] == same["test_labels"] == [0.3333] * 3
    assert same["differ"] and same["worst_feature_name"].startswith("mean of channel")
    assert "different mean" in same["message"]


def test_image_folder_from_one_distribution_is_consistent(image_folder):
    import shutil

    from mlstrategy.data import ImageFolderDataModule
    from mlstrategy.evaluation.error_analysis import analyze_errors
    from mlstrategy.models import ConvNet

    shutil.rmtree(image_folder / "test")
    shutil.copytree(image_folder / "train", image_folder / "test")  # unshifted images
    dm = ImageFolderDataModule(str(image_folder), image_size=12, resize_size=12, num_workers=0)
    out = analyze_errors(ConvNet(dm.input_shape, 3, channels=[4]), dm, {})
    assert out["most_confused"] == [] and len(out["highest_loss"]) == 10
    assert not out["same_distribution"]["differ"]


def _multitask():
    from mlstrategy.data import MultiTaskDataModule, StreetScenes
    from mlstrategy.models import Head, MultiTaskNet

    dm = MultiTaskDataModule(StreetScenes(n_samples=200, image_size=16), seed=0)
    dm.prepare()
    heads = {"pedestrian": Head("binary"), "signs": Head("multilabel", ["stop_sign", "car"])}
    torch.manual_seed(0)
    return dm, MultiTaskNet(dm.input_shape, heads, num_classes=dm.num_classes, layer_dims=[8])


def test_multitask_analysis_per_task_on_present_labels_at_dev_positions():
    from sklearn.metrics import confusion_matrix

    from mlstrategy.evaluation.error_analysis import analyze_errors

    dm, net = _multitask()
    x_dev, y_dev = dm.prepare()["dev"]
    with torch.no_grad():
        z = net.eval().task_outputs(net(x_dev))
    splits: dict = {"dev": {"tasks": {}}}
    reference = {}
    for task in ("pedestrian", "car"):
        column = dm.label_names.index(task)
        present = np.flatnonzero(y_dev[:, column].numpy() >= 0)
        y, logit = y_dev[present, column].numpy(), z[task][present].numpy().astype(np.float64)
        loss = np.logaddexp(0, -logit) * y + np.logaddexp(0, logit) * (1 - y)  # -log a_y
        top = np.argsort(-loss, kind="stable")[:10]
        reference[task] = (present[top], loss[top], y[top])
        cm = confusion_matrix(y, (logit > 0).astype(int), labels=[0, 1])
        splits["dev"]["tasks"][task] = {"confusion_matrix": cm.tolist()}
        reference[task] += (cm,)

    out = analyze_errors(net, dm, splits)
    assert set(out["tasks"]) == {"pedestrian", "stop_sign", "car"}  # every classification task
    for task, (index, loss, y, cm) in reference.items():
        worst = out["tasks"][task]["highest_loss"]
        assert [w["index"] for w in worst] == index.tolist()  # positions in the dev split
        assert [w["loss"] for w in worst] == pytest.approx(loss.tolist(), abs=1e-3)
        assert [w["true"] for w in worst] == [["absent", "present"][int(v)] for v in y]
        pairs = out["tasks"][task]["most_confused"]
        counts = {(p["true"], p["predicted"]): p["count"] for p in pairs}
        expected = {("present", "absent"): int(cm[1, 0]), ("absent", "present"): int(cm[0, 1])}
        assert counts == {k: v for k, v in expected.items() if v}
    assert out["tasks"]["stop_sign"]["most_confused"] == []  # no matrix: none, but examples
    same = out["same_distribution"]
    y_test = dm.prepare()["test"][1]
    column = dm.label_names.index("car")
    car = y_test[:, column][y_test[:, column] >= 0]
    assert same["tasks"]["car"]["test_labels"] == pytest.approx(
        [round(float((car == k).float().mean()), 4) for k in (0, 1)]
    )
    assert set(same["tasks"]) == {"pedestrian", "stop_sign", "car"}
    assert "worst_feature" in same and isinstance(same["differ"], bool)


def test_multitask_analysis_skips_regression_tasks_but_checks_the_features():
    from mlstrategy.data import LabelledArrays, MultiTaskDataModule
    from mlstrategy.data.multitask import MultiTaskSource
    from mlstrategy.evaluation.error_analysis import analyze_errors
    from mlstrategy.models import Head, MultiTaskNet

    class Sizes(MultiTaskSource):
        def load(self, seed: int) -> LabelledArrays:
            x = np.random.default_rng(seed).normal(size=(300, 3)).astype(np.float32)
            return LabelledArrays(x=x, y=x[:, :1] * 2, label_names=["size"])

    dm = MultiTaskDataModule(Sizes(), seed=0)
    net = MultiTaskNet((3,), {"size": Head("regression")}, num_classes=dm.num_classes)
    out = analyze_errors(net, dm, {})
    assert out["tasks"] == {} and out["same_distribution"]["tasks"] == {}
    assert not out["same_distribution"]["differ"]


def test_digit_images_in_memory_give_the_examples_for_the_figure():
    from mlstrategy.data import ArrayDataModule, DigitImages
    from mlstrategy.evaluation.error_analysis import analyze_errors
    from mlstrategy.models import ConvNet

    dm = ArrayDataModule(DigitImages(size=8, classes=[5, 6, 7], labels_per_class=20), seed=0)
    x_dev, y_dev = dm.prepare()["dev"]
    torch.manual_seed(0)
    model = ConvNet(dm.input_shape, 3, channels=[4]).eval()
    with torch.no_grad():
        losses = torch.nn.functional.cross_entropy(model(x_dev), y_dev, reduction="none")
    order = torch.argsort(losses, descending=True, stable=True)[:10]
    out = analyze_errors(model, dm, {})
    assert [w["index"] for w in out["highest_loss"]] == order.tolist()
    np.testing.assert_array_equal(out["highest_loss_x"], x_dev[order].numpy())
    assert out["same_distribution"]["dev_labels"] == pytest.approx(
        [float((y_dev == k).float().mean()) for k in range(3)], abs=1e-4
    )
