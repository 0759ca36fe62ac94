"""GPU check: the CIFAR-10 recipes on one CUDA device, in under 5 minutes, as one table.

Rows: the CNN recipe on 50,000 random uint8 images held on the device (bf16-mixed, compiled;
images/s over the second epoch, MFU from ``FlopCounterMode`` against the dense bf16 peak, host
syncs per step); a ResNet-18 fine-tune step (random local weights); and ``mlstrategy run
recipes/cifar10/cnn.yaml --trainer.accelerator=cuda`` on a fake CIFAR-10 folder. No download.

    python benchmarks/gpu_check.py                    # the table
    python benchmarks/gpu_check.py --peak-tflops 400  # a device missing from PEAK_BF16_TFLOPS
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _common import add_json_option, quiet, report

from mlstrategy.run_folder import METRICS_FILE

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes" / "cifar10"

# Dense (no sparsity) bf16 tensor-core peaks, TFLOPS, by a part of torch.cuda.get_device_name().
# Checked in order: the first match wins (so "H100 PCIe" before "H100").
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "H800": 989.0}
PEAK_BF16_TFLOPS |= {"A100": 312.0, "A800": 312.0, "L40S": 362.0, "L4": 121.0, "A10G": 70.0}


def peak_tflops(device_name: str, override: float | None = None) -> float | None:
    """The bf16 peak of ``device_name`` (``override`` first); None when it is not in the table."""
    if override is not None:
        return override
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device_name), None)


def step_flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of one training step's forward and backward (``model.cost`` on a batch)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        model.cost(model(x), y).backward()  # type: ignore[operator]
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


@contextmanager
def count_host_syncs(cuda: bool) -> Iterator[dict[str, int]]:
    """Count ``Tensor.item`` / ``Tensor.__bool__`` calls and, on CUDA, the synchronizing
    operations ``torch.cuda.set_sync_debug_mode("warn")`` reports, inside the block."""
    counts = {"item_bool": 0, "cuda_sync": 0}
    originals = {name: getattr(torch.Tensor, name) for name in ("item", "__bool__")}

    def counting(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            counts["item_bool"] += 1
            return fn(self, *args, **kwargs)

        return wrapper

    for name, fn in originals.items():
        setattr(torch.Tensor, name, counting(fn))
    try:  # the warnings filter counts what the sync debug mode reports
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")
            try:
                yield counts
            finally:
                if cuda:
                    torch.cuda.set_sync_debug_mode("default")
        counts["cuda_sync"] = sum("synchronizing" in str(w.message) for w in caught)
    finally:
        for name, fn in originals.items():
            setattr(torch.Tensor, name, fn)


def recipe_args(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's and the data module's ``init_args`` of a recipe in recipes/cifar10."""
    recipe = yaml.safe_load((RECIPES / name).read_text())
    return dict(recipe["model"]["init_args"]), dict(recipe["data"]["init_args"])


def _build(entry: dict[str, Any]) -> Any:  # a class_path entry of our own recipe
    module, _, name = entry["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**entry.get("init_args", {}))


def random_images(m: int, m_test: int, seed: int = 0) -> Any:
    from mlstrategy.data.sources import Arrays

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (m + m_test, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, m + m_test)
    return Arrays(x[:m], y[:m], [f"class{k}" for k in range(10)], x[m:], y[m:])


def cnn_in_memory(peak: float | None) -> list[Any]:
    """The CNN recipe on 50,000 random uint8 images on the device: bf16-mixed, compiled."""
    import lightning as L

    from mlstrategy.data import ArrayDataModule
    from mlstrategy.data.sources import ArraySource
    from mlstrategy.models import ConvNet

    class InMemory(ArraySource):
        def load(self, seed: int) -> Any:
            return random_images(50_000, 10_000, seed)

    model_args, data_args = recipe_args("cnn.yaml")
    data_args.pop("source")
    data_args["augment"] = [_build(a) for a in data_args.get("augment") or []]
    data = ArrayDataModule(InMemory(), **data_args)
    model = ConvNet(data.input_shape, data.num_classes, **{**model_args, "compile": True})
    x, y = (t[: data.batch_size].cuda() for t in data.prepare()["train"])
    flops = step_flops(ConvNet(data.input_shape, 10, **model_args).cuda(), x, y)

    class Clock(L.Callback):
        """Wall time of the second epoch, with its host syncs counted."""

        def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
            if trainer.current_epoch == 1:
                torch.cuda.synchronize()
                self.sync = count_host_syncs(cuda=True)
                self.counts = self.sync.__enter__()
                self.start, self.steps = time.perf_counter(), trainer.num_training_batches

        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            if trainer.current_epoch == 1:
                self.sync.__exit__(None, None, None)
                torch.cuda.synchronize()
                self.seconds = time.perf_counter() - self.start

    clock = Clock()
    quiet_trainer = {"logger": False, "enable_checkpointing": False, "enable_model_summary": False}
    trainer = L.Trainer(
        accelerator="cuda",
        devices=1,
        precision="bf16-mixed",
        max_epochs=2,
        limit_val_batches=0,
        enable_progress_bar=False,
        benchmark=True,  # the recipe's: cuDNN picks its conv algorithms for these shapes
        callbacks=[clock],
        **quiet_trainer,
    )
    trainer.fit(model, datamodule=data)
    images = len(data.prepare()["train"][0])
    per_s = images / clock.seconds
    mfu = f"{per_s * flops / data.batch_size / (peak * 1e12):.1%}" if peak else "- (no peak)"
    counts = {k: f"{v / clock.steps:.2f}" for k, v in clock.counts.items()}
    syncs = f"{counts['item_bool']} item/bool, {counts['cuda_sync']} CUDA"
    return [
        "CNN recipe, 50,000 uint8 images in device memory",
        f"batch {data.batch_size}, bf16-mixed, compile",
        f"{per_s:,.0f}",
        f"{1000 * clock.seconds / clock.steps:.2f}",
        mfu,
        syncs,
    ]


def resnet_step(peak: float | None, workdir: Path, steps: int) -> list[Any]:
    """A ResNet-18 fine-tune step (every layer trains), bf16 autocast, random weights."""
    import torchvision

    from mlstrategy.models import TransferNet

    weights = workdir / "resnet18-random.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    model_args, data_args = recipe_args("resnet18_finetune.yaml")
    model_args.update(weights=None, weights_path=str(weights), strategy="finetune")
    model = TransferNet((3, 32, 32), 10, **model_args).cuda().train()
    batch = int(data_args["batch_size"])
    x = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, device="cuda")
    y = torch.randint(0, 10, (batch,), device="cuda")
    flops = step_flops(model, x, y)
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            cost = model.cost(model(x), y)
        cost.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(5):  # warm-up: cuDNN's algorithm choice, the allocator
        step()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        step()
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1000 / steps
    mfu = f"{flops / seconds / (peak * 1e12):.1%}" if peak else "- (no peak)"
    return [
        "ResNet-18 fine-tune step (TransferNet, 3x32x32)",
        f"batch {batch}, bf16 autocast, eager",
        f"{batch / seconds:,.0f}",
        f"{1000 * seconds:.2f}",
        mfu,
        "-",
    ]


def end_to_end(workdir: Path, epochs: int) -> list[Any]:
    """``mlstrategy run`` of the CNN recipe on CUDA, on a fake CIFAR-10 folder (no download)."""
    from mlstrategy.data.vision import write_cifar

    write_cifar(workdir / "data", random_images(50_000, 10_000))
    command = [
        str(Path(sys.executable).with_name("mlstrategy")),
        "run",
        str(RECIPES / "cnn.yaml"),
        "--trainer.accelerator=cuda",
        "--trainer.precision=bf16-mixed",
        "--model.init_args.compile=true",
        f"--trainer.max_epochs={epochs}",
        f"--data.init_args.source.init_args.root={workdir / 'data'}",
        "--trainer.enable_progress_bar=false",
    ]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=240)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:], sep="\n", file=sys.stderr)
        return [f"mlstrategy run cnn.yaml ({epochs} epochs)", "-", "-", "-", "-", "FAILED"]
    (metrics,) = workdir.glob(f"logs/cnn/*/{METRICS_FILE}")
    fit = json.loads(metrics.read_text())["fit_seconds"]  # compile and dev passes included
    return [
        f"mlstrategy run cnn.yaml --trainer.accelerator=cuda ({epochs} epochs)",
        "fake CIFAR-10 folder, bf16-mixed, compile",
        f"{epochs * 45_000 / fit:,.0f} (fit)",
        f"{1000 * fit / (epochs * 88):.2f} (fit)",
        "-",
        f"exit 0; fit {fit:.0f} s, {seconds:.0f} s wall in all",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak")
    parser.add_argument("--steps", type=int, default=30, help="timed ResNet-18 steps")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the end-to-end run")
    add_json_option(parser)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit(
            "gpu_check.py needs a CUDA device, and torch sees none (torch.cuda.is_available() "
            f"is False; torch {torch.__version__}, built for CUDA {torch.version.cuda}). Run "
            "it on a machine with an NVIDIA GPU; the other benchmarks run on the CPU."
        )
    quiet()
    name = torch.cuda.get_device_name()
    peak = peak_tflops(name, args.peak_tflops)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            cnn_in_memory(peak),
            resnet_step(peak, Path(tmp), args.steps),
            end_to_end(Path(tmp), args.epochs),
        ]
    peak_text = f"{peak:g} TFLOPS bf16 peak" if peak else "peak unknown: pass --peak-tflops"
    report(
        args.json,
        f"GPU check on {name} ({peak_text}):",
        ["case", "setting", "images/s", "ms/step", "MFU", "host syncs/step"],
        rows,
    )


if __name__ == "__main__":
    main()
