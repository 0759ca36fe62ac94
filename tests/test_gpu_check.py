"""benchmarks/gpu_check.py: its CPU-safe parts (peaks, FLOP counts, the sync counter, the
recipes it reads) and its message on a machine without CUDA."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA A100-SXM4-40GB", 312.0),
        ("NVIDIA L4", 121.0),
        ("Tesla T4", None),
    ],
)
def test_bf16_peaks_by_device_name(name, peak):
    assert gpu_check.peak_tflops(name) == peak
    assert gpu_check.peak_tflops(name, override=100.0) == 100.0


def test_step_flops_match_the_closed_form():
    from mlstrategy.models import ConvNet, SoftmaxRegression

    m, n, k = 7, 5, 3
    softmax = SoftmaxRegression((n,), k)
    # forward X W (2 m n k) and the weight gradient (2 m n k); the input needs no gradient
    x, y = torch.randn(m, n), torch.randint(0, k, (m,))
    assert gpu_check.step_flops(softmax, x, y) == 4 * m * n * k
    conv = ConvNet((1, 8, 8), 3, channels=[4], pool_sizes=1)
    images = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    conv_forward = 2 * 1 * 4 * 3 * 3 * 8 * 8 * 6  # 2 C_in C_out f^2 H W per example, m = 6
    head_forward = 2 * 6 * 4 * 3
    # conv: forward + weight gradient; head: forward + weight and input gradients
    expected = 2 * conv_forward + 3 * head_forward
    assert gpu_check.step_flops(conv, images, torch.randint(0, 3, (6,))) == expected
    assert all(p.grad is None for p in conv.parameters())  # left as it found them


def test_host_syncs_are_counted_inside_the_block_only():
    item, boolean = torch.Tensor.item, torch.Tensor.__bool__
    t = torch.tensor(1.0)
    with gpu_check.count_host_syncs(cuda=False) as counts:
        t.item()
        t.item()
        if t > 0:
            pass
    t.item()
    assert counts == {"item_bool": 3, "cuda_sync": 0}
    assert torch.Tensor.item is item and torch.Tensor.__bool__ is boolean


def test_it_reads_both_recipes_and_makes_uint8_images():
    cnn_model, cnn_data = gpu_check.recipe_args("cnn.yaml")
    assert cnn_model["channels"] == [64, 256, 256] and cnn_data["batch_size"] == 512
    augment = [gpu_check._build(a) for a in cnn_data["augment"]]
    assert [type(a).__name__ for a in augment] == [
        "RandomCropPerExample",
        "HorizontalFlipPerExample",
    ]
    resnet_model, _ = gpu_check.recipe_args("resnet18_finetune.yaml")
    assert resnet_model["backbone"] == "resnet18"
    arrays = gpu_check.random_images(20, 5)
    assert arrays.x.dtype == np.uint8 and arrays.x.shape == (20, 3, 32, 32)
    assert arrays.x_test is not None and arrays.x_test.shape == (5, 3, 32, 32)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_exits_with_a_clear_message():
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 1
    assert "needs a CUDA device" in result.stderr and "Traceback" not in result.stderr
