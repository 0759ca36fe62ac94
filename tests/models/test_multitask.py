"""MultiTaskNet: the masked cost against a hand computation over present labels, exact zero
gradients on missing labels, heads and trunks, and clear errors for bad recipes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mlstrategy.models import Head, MultiTaskNet

NAN = float("nan")


def _bce(z: float, y: float) -> float:
    a = 1 / (1 + math.exp(-z))
    return -(y * math.log(a) + (1 - y) * math.log(1 - a))


def _ce(z: list[float], y: int) -> float:
    return -(z[y] - math.log(sum(math.exp(v) for v in z)))


def _net(**kwargs) -> MultiTaskNet:
    torch.manual_seed(0)
    heads = {
        "car": Head("binary", loss_weight=2.0),
        "signs": Head("multilabel", columns=["stop", "light"], loss_weight=0.5),
        "weather": Head("multiclass"),
        "distance": Head("regression", loss_weight=0.1),
    }
    classes = {"car": 2, "stop": 2, "light": 2, "weather": 3, "distance": 0}
    return MultiTaskNet((5,), heads, num_classes=classes, layer_dims=[6], **kwargs)


# Columns: car, stop, light, weather, distance.
Y = torch.tensor(
    [
        [1.0, 0.0, -1.0, 2.0, 3.5],
        [-1.0, 1.0, 1.0, -1.0, NAN],
        [0.0, -1.0, 0.0, 0.0, -2.0],
        [1.0, -1.0, -1.0, 1.0, NAN],
    ]
)


def _by_hand(out: dict[str, torch.Tensor], y: torch.Tensor) -> float:
    """Each task's cost averaged over its present labels, times its head's weight, summed."""
    z = {k: v.detach().double().tolist() for k, v in out.items()}
    y = y.tolist()
    total = 0.0
    car = [_bce(z["car"][i], r[0]) for i, r in enumerate(y) if r[0] != -1]
    total += 2.0 * sum(car) / len(car)
    for j, col in ((0, 1), (1, 2)):
        terms = [_bce(z["signs"][i][j], r[col]) for i, r in enumerate(y) if r[col] != -1]
        total += 0.5 * sum(terms) / len(terms)
    weather = [_ce(z["weather"][i], int(r[3])) for i, r in enumerate(y) if r[3] != -1]
    total += sum(weather) / len(weather)
    dist = [(z["distance"][i][0] - r[4]) ** 2 for i, r in enumerate(y) if not math.isnan(r[4])]
    total += 0.1 * sum(dist) / len(dist)
    return total


def test_masked_cost_equals_the_hand_computation_over_present_labels():
    net = _net()
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    out = net(x)
    assert out["car"].shape == (4,) and out["signs"].shape == (4, 2)
    assert out["weather"].shape == (4, 3) and out["distance"].shape == (4, 1)
    assert net.cost(out, Y).item() == pytest.approx(_by_hand(out, Y), rel=1e-5)
    # Changing a missing label's value (any of the ways it can be written) changes nothing.
    y2 = Y.clone()
    y2[1, 0], y2[2, 1], y2[1, 4] = NAN, -1.0, NAN
    assert net.cost(out, y2).item() == pytest.approx(net.cost(out, Y).item(), abs=0)


def test_gradient_is_exactly_zero_on_missing_labels():
    net = _net()
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(2))
    out = {k: v.detach().requires_grad_(True) for k, v in net(x).items()}
    net.cost(out, Y).backward()
    g = {k: v.grad for k, v in out.items()}
    assert g["car"][1].item() == 0.0  # car label missing in example 1
    assert (g["car"][[0, 2, 3]] != 0).all()
    assert g["signs"][2, 0].item() == 0.0 and g["signs"][3, 0].item() == 0.0
    assert g["signs"][0, 1].item() == 0.0 and g["signs"][3, 1].item() == 0.0
    assert (g["weather"][1] == 0).all() and (g["weather"][0] != 0).all()
    assert g["distance"][1, 0].item() == 0.0 and g["distance"][3, 0].item() == 0.0
    assert g["distance"][0, 0].item() != 0.0
    # d/dz of w/m_t sum BCE = w/m_t (sigmoid(z) - y): car has 3 present labels, weight 2.
    z = out["car"].detach()
    expected = 2.0 / 3 * (torch.sigmoid(z[0]) - 1.0)
    assert g["car"][0].item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_batch_with_no_labels_for_a_task_adds_zero_and_no_nan():
    net = _net()
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(3))
    y = Y.clone()
    y[:, 0] = -1.0  # no car label in the whole batch
    out = net(x)
    cost = net.cost(out, y)
    assert torch.isfinite(cost)
    assert net.task_costs(out, y)["car"].item() == 0.0
    net.zero_grad()
    cost.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    assert (net.net.heads["car"].weight.grad == 0).all()
    all_missing = torch.tensor([[-1.0, -1.0, -1.0, -1.0, NAN]] * 4)
    assert net.cost(net(x), all_missing).item() == 0.0


def test_separate_trunks_are_one_single_task_net_per_head():
    shared = _net(shared_trunk=True)
    separate = _net(shared_trunk=False)
    trunk = sum(p.numel() for p in shared.net.trunk.parameters())
    assert trunk == 5 * 6 + 6  # one hidden layer of 6 units; the MLP's own head is gone
    heads = sum(p.numel() for p in shared.net.heads.parameters())
    assert sum(p.numel() for p in shared.parameters()) == trunk + heads
    assert sum(p.numel() for p in separate.parameters()) == 4 * trunk + heads
    # A head's cost sends gradient into its own trunk only.
    x = torch.randn(4, 5)
    out = separate(x)
    separate.zero_grad()
    separate.task_costs(out, Y)["car"].backward()
    grads = {k: t.features[1][0].weight.grad for k, t in separate.net.trunks.items()}
    assert grads["car"].abs().sum() > 0
    assert all(grads[k] is None or (grads[k] == 0).all() for k in ("signs", "weather"))


def test_cnn_trunk_on_images():
    heads = {"a": Head("binary"), "b": Head("binary")}
    net = MultiTaskNet(
        (3, 16, 16), heads, trunk="cnn", channels=[4, 8], layer_dims=[], learning_rate=0.01
    )
    out = net(torch.zeros(2, 3, 16, 16))
    assert out["a"].shape == (2,) and net.net.num_features == 8


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_training_lowers_the_cost_and_evaluates_each_task_on_present_labels():
    import lightning as L

    from mlstrategy.data import InMemoryBatches
    from mlstrategy.evaluation.scoring import SplitScorer

    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=g)
    y = torch.stack([(x[:, 0] > 0).float(), (x[:, 1] > 0).float()], dim=1)
    y[torch.rand(200, 2, generator=g) < 0.3] = -1.0
    y[:, 1] = -1.0  # the second task has no label at all
    net = MultiTaskNet((4,), {"a": Head(), "b": Head()}, layer_dims=[8], learning_rate=0.05)
    scorer = SplitScorer("train")
    trainer = L.Trainer(
        max_epochs=30,
        callbacks=[scorer],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    before = net.cost(net(x), y).item()
    trainer.fit(net, InMemoryBatches(x, y, batch_size=None, shuffle=True))
    assert net.cost(net(x), y).item() < before / 2
    trainer.test(net, InMemoryBatches(x, y, batch_size=64), verbose=False)
    rows = scorer.details["tasks"]
    present = y[:, 0] >= 0
    assert rows["a"]["n"] == int(present.sum())
    from sklearn.metrics import f1_score

    with torch.no_grad():
        pred = (net(x)["a"] > 0).long()
    expected = f1_score(y[present, 0].long().numpy(), pred[present].numpy())
    assert rows["a"]["f1"] == pytest.approx(expected, abs=1e-6)
    assert rows["b"] == {
        "kind": "binary",
        "head": "b",
        "n": 0,
        "no_labels": True,
        "loss_weight": 1.0,
    }


# ----------------------------------------------------------------------------- bad recipes
@pytest.mark.parametrize(
    ("heads", "classes", "match"),
    [
        (
            {"car": {"kind": "segmentation"}},
            None,
            r"heads\.car\.kind='segmentation' is not one of \['binary', 'multilabel', "
            r"'multiclass', 'regression'\]",
        ),
        (
            {"bus": {"kind": "binary"}},
            {"car": 2, "stop": 2},
            r"heads\.bus\.columns \(default: its name\): the data has no label column 'bus'; "
            r"its label columns are \['car', 'stop'\]",
        ),
        (
            {"car": {"loss_weight": -0.5}},
            None,
            r"heads\.car\.loss_weight=-0\.5 must be a number >= 0",
        ),
        ({"car": {"loss_weight": NAN}}, None, r"heads\.car\.loss_weight=nan must be"),
        ({}, None, r"heads=\{\} declares no head"),
        (
            {"car": {"kind": "binary"}},
            {"car": 0},
            r"heads\.car\.kind='binary', but label column 'car' holds real numbers.*regression",
        ),
        (
            {"a": {"columns": ["x"]}, "b": {"columns": ["x"]}},
            {"x": 2},
            r"'x' is read by two heads, heads\.a and heads\.b",
        ),
        (
            {"w": {"kind": "multiclass", "columns": ["w", "v"]}},
            {"w": 3, "v": 3},
            r"heads\.w\.columns=\['w', 'v'\]: a multiclass head reads exactly one column",
        ),
        (
            {"w": {"kind": "multiclass", "num_classes": 2}},
            {"w": 4},
            r"heads\.w\.num_classes=2, but label column 'w' has 4 classes",
        ),
        ({"a.b": {}}, None, r"cannot be empty or contain '\.'"),
    ],
)
def test_bad_heads_name_the_argument_the_value_and_what_is_allowed(heads, classes, match):
    with pytest.raises(ValueError, match=match):
        MultiTaskNet((3,), heads, num_classes=classes, layer_dims=[4])


def test_bad_trunk_and_a_multiclass_head_without_data():
    with pytest.raises(ValueError, match=r"trunk='rnn' is not one of \['mlp', 'cnn', 'pre"):
        MultiTaskNet((3,), {"a": Head()}, trunk="rnn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"heads\.w\.num_classes is needed"):
        MultiTaskNet((3,), {"w": Head("multiclass")})


def test_hparams_are_plain_values_and_rebuild_the_model():
    net = _net()
    heads = net.hparams["heads"]
    assert heads["signs"] == {
        "kind": "multilabel",
        "columns": ["stop", "light"],
        "num_classes": None,
        "loss_weight": 0.5,
    }
    clone = MultiTaskNet(**dict(net.hparams))
    clone.load_state_dict(net.state_dict())
    x = torch.randn(3, 5)
    for k, v in net(x).items():
        np.testing.assert_array_equal(v.detach().numpy(), clone(x)[k].detach().numpy())


def test_pretrained_trunk_starts_from_an_earlier_runs_weights(tmp_path):
    from mlstrategy.models import DeepNet

    torch.manual_seed(3)
    source = DeepNet((5,), 3, layer_dims=[7])
    ckpt = tmp_path / "best.ckpt"
    hparams = {"_class_path": "mlstrategy.models.DeepNet", **dict(source.hparams)}
    torch.save({"state_dict": source.state_dict(), "hyper_parameters": hparams}, ckpt)

    net = MultiTaskNet(
        (5,),
        {"a": Head(), "b": Head()},
        trunk="pretrained",
        pretrained=str(ckpt),
        shared_trunk=False,
    )
    src = {k: v for k, v in source.net.state_dict().items() if not k.startswith("head.")}
    for trunk in net.net.trunks.values():
        got = {k: v for k, v in trunk.state_dict().items() if not k.startswith("head.")}
        assert got.keys() == src.keys() and all(torch.equal(got[k], src[k]) for k in src)
    # Separate trunks are separate copies: training one leaves the source untouched.
    assert net.net.trunks["a"] is not net.net.trunks["b"]
    with pytest.raises(ValueError, match="inputs of shape"):
        MultiTaskNet((6,), {"a": Head()}, trunk="pretrained", pretrained=str(ckpt))
    with pytest.raises(ValueError, match="give `pretrained`"):
        MultiTaskNet((5,), {"a": Head()}, trunk="pretrained")
