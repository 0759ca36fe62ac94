"""The learning-rate finder: `mlstrategy lr-find RECIPE` and find_learning_rate."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from conftest import write_recipe
from mlstrategy.cli import main
from mlstrategy.data import ArrayDataModule, Moons
from mlstrategy.models import DeepNet
from mlstrategy.runs.lr_find import find_learning_rate, lr_find_figure

MOONS = {
    "class_path": "mlstrategy.data.ArrayDataModule",
    "init_args": {"source": {"class_path": "mlstrategy.data.Moons"}, "batch_size": 32},
}


@pytest.mark.slow
def test_lr_find_verb_writes_the_sweep_and_suggests_a_tenth_of_the_lowest_cost_rate(in_tmp, capsys):
    recipe = write_recipe(
        in_tmp / "moons.yaml",
        model={"class_path": "mlstrategy.models.DeepNet", "init_args": {"layer_dims": [8]}},
        data=MOONS,
    )
    args = ["lr-find", str(recipe), "--num-training", "30", "--min-lr", "1e-4", "--max-lr", "1"]
    assert main(args) == 0
    (found,) = in_tmp.glob("logs/lr-find/moons/*/lr_find.json")
    result = json.loads(found.read_text())
    assert len(result["lr"]) == len(result["cost"]) == 30
    assert result["lr"][0] == pytest.approx(1e-4, rel=0.5) and result["lr"][-1] <= 1.0
    lowest = min(range(10, 30), key=result["cost"].__getitem__)
    assert result["suggestion"] == pytest.approx(result["lr"][lowest] / 10)
    assert (found.parent / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    out, err = capsys.readouterr()
    assert "--model.init_args.learning_rate=" in out
    # One suggestion, with its rule; none of Lightning's scratch-checkpoint chatter.
    assert out.count("suggested learning rate:") == 1 and "steepest" not in out
    rule = f"{result['suggestion']:.3g} (a tenth of the rate with the lowest smoothed cost"
    assert rule in " ".join(out.split())  # the line may wrap
    assert "weights_only" not in out + err and ".lr_find_" not in out + err
    assert not list(in_tmp.glob(".lr_find*.ckpt"))  # Lightning's scratch checkpoint is gone


def test_the_sweep_runs_its_steps_and_leaves_the_weights_as_they_were(in_tmp):
    data = ArrayDataModule(Moons(n_samples=100), batch_size=16)
    model = DeepNet(data.input_shape, data.num_classes, layer_dims=[8])
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    result = find_learning_rate(trainer, model, data, min_lr=1e-3, num_training=20)
    # 20 steps although max_epochs=1 holds only 4 (60 train examples, batches of 16).
    assert len(result["lr"]) == 20 and trainer.max_epochs == 1
    assert result["suggestion"] is not None and 1e-4 <= result["suggestion"] <= 0.1
    for k, v in model.net.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_lr": 1.0, "max_lr": 0.1}, "min_lr=1.0, max_lr=0.1: need 0 < min_lr < max_lr"),
        ({"num_training": 5}, "num_training=5 must be > 10 steps"),
    ],
)
def test_bad_sweep_settings_fail_with_a_clear_message(kwargs, message):
    data = ArrayDataModule(Moons(n_samples=100))
    model = DeepNet(data.input_shape, data.num_classes, layer_dims=[8])
    with pytest.raises(ValueError) as err:
        find_learning_rate(L.Trainer(logger=False), model, data, **kwargs)
    assert message in str(err.value)


def test_the_sweep_plot_has_a_title_a_log_rate_axis_a_cost_axis_and_the_suggestion():
    rates = [10 ** (-6 + i / 5) for i in range(31)]
    costs = [1.0 - 0.01 * i for i in range(31)]
    ax = lr_find_figure(rates, costs, 0.01, "moons").axes[0]
    assert ax.get_title() == "Learning-rate sweep: moons"
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_xscale()) == (
        "learning rate (log scale)",
        "cost",
        "log",
    )
    line, marker = ax.get_lines()
    assert list(line.get_xdata()) == rates[10:]  # the first 10 smoothed costs are biased
    assert list(marker.get_xdata()) == [0.01, 0.01]
    assert marker.get_label().startswith("suggestion 0.01 (a tenth of the rate")
