"""Inference latency: median of repeats, one example, model left as found."""

from __future__ import annotations

import time

import pytest
import torch

from mlstrategy.evaluation.latency import measure_latency


class _Sleepy(torch.nn.Module):
    """Takes ``delay`` seconds per call and records the input shapes it saw."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.delay = delay
        self.shapes: list[tuple[int, ...]] = []
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay)
        self.shapes.append(tuple(x.shape))
        self.modes.append(self.training)
        return x


def test_latency_is_the_median_pass_of_one_example_in_eval_mode():
    model = _Sleepy(0.004)
    model.train()
    ms = measure_latency(model, torch.zeros(3, 5), repeats=5, warmup=2)
    assert 4.0 <= ms < 40.0
    assert model.shapes == [(1, 3, 5)] * 7  # warmup + repeats, batch of one
    assert not any(model.modes)  # eval mode while timed
    assert model.training  # restored afterwards


def test_repeats_must_be_positive():
    with pytest.raises(ValueError, match="repeats=0"):
        measure_latency(torch.nn.Linear(2, 1), torch.zeros(2), repeats=0)
