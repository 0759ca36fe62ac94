"""The activation lesson (recipes/deep/activation/): a deep linear net is one linear map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import REPO
from mlstrategy.cli import main
from mlstrategy.models import DeepNet
from mlstrategy.runs.recipes import recipe_configs

STUDY = REPO / "recipes" / "deep" / "activation"
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def test_a_deep_linear_net_is_an_affine_map():
    """With g(z) = z, net(a x1 + (1 - a) x2) = a net(x1) + (1 - a) net(x2): however many
    layers, the logit is w^T x + b, the form of logistic regression."""
    torch.manual_seed(0)
    model = DeepNet((2,), 2, layer_dims=[8, 8, 8, 8], activation="linear").double()
    x1, x2 = torch.randn(5, 2).double(), torch.randn(5, 2).double()
    mixed = model(0.3 * x1 + 0.7 * x2)
    assert torch.allclose(mixed, 0.3 * model(x1) + 0.7 * model(x2), atol=1e-12)
    tanh = DeepNet((2,), 2, layer_dims=[8, 8, 8, 8], activation="tanh").double()
    assert not torch.allclose(tanh(0.3 * x1 + 0.7 * x2), 0.3 * tanh(x1) + 0.7 * tanh(x2))


@pytest.mark.parametrize("configs", recipe_configs(STUDY), ids=lambda c: c[-1].stem)
def test_every_activation_recipe_is_a_valid_lightning_cli_config(configs, capsys):
    args = ["fit", *(f"--config={c}" for c in configs), "--print_config"]
    assert main(args) == 0
    assert "mlstrategy.data.Flower" in capsys.readouterr().out


def _dev_accuracy(root: Path) -> dict[str, float]:
    paths = root.glob("logs/activation/*/*/metrics.json")
    return {p.parts[-3]: json.loads(p.read_text())["splits"]["dev"]["accuracy"] for p in paths}


@pytest.mark.slow
def test_linear_is_no_better_than_logistic_while_tanh_and_relu_fit_the_flower(in_tmp):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fast = ["--trainer.max_epochs=150", "--model.init_args.learning_rate=0.04"]
        assert main(["run", str(STUDY), *fast, *QUIET]) == 0
    finally:
        torch.set_num_threads(threads)
    acc = _dev_accuracy(in_tmp)
    assert set(acc) == {"logistic", "linear", "tanh", "relu"}
    # A line cannot split the petals: both stay near chance, within a few dev examples.
    assert acc["logistic"] < 0.65 and acc["linear"] < 0.65
    assert abs(acc["linear"] - acc["logistic"]) <= 0.1
    assert min(acc["tanh"], acc["relu"]) > max(acc["logistic"], acc["linear"]) + 0.2
    assert min(acc["tanh"], acc["relu"]) > 0.8
