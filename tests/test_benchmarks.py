"""The benchmark scripts run (smoke mode) and compare the same work."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch

from conftest import REPO

BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))


def test_toolkit_training_matches_the_hand_written_loop_weight_for_weight():
    import loop_overhead

    from mlstrategy.data import ArrayDataModule, Digits
    from mlstrategy.models import DeepNet

    dm = ArrayDataModule(Digits(), dev_fraction=0.1, batch_size=64, seed=0)
    x, y = dm.prepare()["train"]
    x_dev, y_dev = dm.prepare()["dev"]
    torch.manual_seed(0)
    template = DeepNet((64,), 10, layer_dims=[128, 64], optimizer="adam", learning_rate=0.001)
    template.input_norm.load_state_dict(dm.input_normalizer().state_dict())
    hand, toolkit = copy.deepcopy(template), copy.deepcopy(template)
    loop_overhead.hand_loop(hand, x, y, x_dev, y_dev, 2, 64, 0, validate=False)
    loop_overhead.toolkit_fit(toolkit, dm, 2, validate=False)
    for name, value in hand.net.state_dict().items():
        assert torch.allclose(value, toolkit.net.state_dict()[name], atol=1e-6), name


@pytest.mark.slow
@pytest.mark.parametrize(
    "script", ["loop_overhead.py", "time_to_accuracy.py", "batching.py", "scaling.py"]
)
def test_benchmark_scripts_run_in_quick_mode(script):
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "machine:" in result.stdout and "|" in result.stdout
