"""The CIFAR-10 recipes: valid LightningCLI configs, and they build and train a step on tiny
CIFAR files in the real layout, with no download (of the data or of the weights)."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import torch

from conftest import REPO
from mlstrategy.cli import main
from mlstrategy.data.sources import Arrays
from mlstrategy.data.vision import write_cifar

RECIPES = REPO / "recipes" / "cifar10"
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


@pytest.fixture
def fake_cifar(in_tmp, monkeypatch):
    """200 train and 40 test random images as data/cifar-10-batches-py; sockets refused."""
    rng = np.random.default_rng(0)

    def images(n: int) -> np.ndarray:
        return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)

    names = [f"class{k}" for k in range(10)]
    write_cifar(
        in_tmp / "data",
        Arrays(images(200), np.arange(200) % 10, names, images(40), np.arange(40) % 10),
    )

    def refuse(*args, **kwargs):
        raise AssertionError("a socket connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return in_tmp


@pytest.mark.parametrize("recipe", ["cnn.yaml", "resnet18_finetune.yaml"])
def test_each_cifar_recipe_is_a_valid_lightning_cli_config(recipe, capsys):
    assert main(["fit", f"--config={RECIPES / recipe}", "--print_config"]) == 0
    printed = capsys.readouterr().out
    assert "class_path: mlstrategy.data.CIFAR10" in printed
    assert "download: false" in printed  # nothing downloads unless the user says so
    assert "mlstrategy.data.RandomCropPerExample" in printed


def _metrics(root, recipe: str) -> dict:
    (path,) = root.glob(f"logs/{recipe}/*/metrics.json")
    return json.loads(path.read_text())


@pytest.mark.slow
def test_the_cnn_recipe_runs_a_step_on_fake_cifar(fake_cifar):
    # The recipe as shipped, narrower (a CPU test), one training step.
    args = ["--model.init_args.channels=[8,16,16]", "--trainer.max_steps=1", *QUIET]
    assert main(["run", str(RECIPES / "cnn.yaml"), *args]) == 0
    splits = _metrics(fake_cifar, "cnn")["splits"]
    assert {k: v["n"] for k, v in splits.items()} == {"train": 180, "dev": 20, "test": 40}
    (ckpt,) = fake_cifar.glob("logs/cnn/*/checkpoints/best.ckpt")
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    mean = state["input_norm.mean"]
    assert torch.equal(mean, mean[:, :1, :1].expand_as(mean))  # one value per channel


@pytest.mark.slow
def test_the_resnet18_recipe_builds_with_local_random_weights_and_fits_a_step(fake_cifar):
    import torchvision

    weights = fake_cifar / "resnet18.pth"  # random: stands in for the ImageNet file offline
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    args = [
        "--model.init_args.weights=null",
        f"--model.init_args.weights_path={weights}",
        "--trainer.max_steps=1",
        "--trainer.limit_val_batches=1",
        *QUIET,
    ]
    # `fit`, not `run`: the whole run's scoring and report are the CNN test's to cover.
    assert main(["fit", f"--config={RECIPES / 'resnet18_finetune.yaml'}", *args]) == 0
    (ckpt,) = fake_cifar.glob("logs/resnet18_finetune/**/last.ckpt")
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    # The backbone's own normalization (ImageNet's, for images in [0, 1]), not CIFAR's.
    imagenet = torch.tensor([0.485, 0.456, 0.406])
    torch.testing.assert_close(state["input_norm.mean"][:, 0, 0], imagenet)
    # Gradual: the head alone trained in the first step; the stem did not move.
    source = torch.load(weights, weights_only=True)
    torch.testing.assert_close(state["net.features.conv1.weight"], source["conv1.weight"])
