"""Artificial data synthesis: statistics drawn from the target, and the course's pool warning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlstrategy.data import Shift, TargetContrast, TargetNoise
from mlstrategy.data.phone_digits import PhoneDigits
from mlstrategy.data.synthesis import estimate_noise_std, pool_report
from mlstrategy.reporting.mismatch import synthesis_lines


def test_noise_level_is_estimated_from_the_phone_digits():
    # PhoneDigits adds noise after a blur; the estimate follows the noise, within 25%.
    for noise in (0.0625, 0.125):
        x = torch.from_numpy(PhoneDigits(half="second", noise=noise).load(0).x)
        assert estimate_noise_std(x) == pytest.approx(noise, rel=0.25)
    # Without noise, what is left is the blurred digits' own fine detail: far less.
    quiet = torch.from_numpy(PhoneDigits(half="second", noise=0.0).load(0).x)
    assert estimate_noise_std(quiet) < 0.04


def test_target_contrast_gives_each_example_a_target_images_mean_and_std():
    g = torch.Generator().manual_seed(0)
    target = 0.3 + 0.05 * torch.rand(40, 1, 8, 8, generator=g)
    transform = TargetContrast(pool=10)
    transform.fit(target, seed=0)
    assert transform.pool_size == 10
    flat = target.reshape(40, -1).numpy()
    pool = {
        (round(float(m), 4), round(float(s), 4))
        for m, s in zip(flat.mean(1), flat.std(1), strict=True)
    }
    torch.manual_seed(0)
    out = transform(torch.rand(16, 1, 8, 8, generator=g)).reshape(16, -1).numpy()
    for mean, std in zip(out.mean(axis=1), out.std(axis=1), strict=True):
        assert (round(float(mean), 4), round(float(std), 4)) in pool


def test_target_noise_adds_one_clip_of_its_pool_to_each_example():
    transform = TargetNoise(clips=4, std=0.1)
    transform.fit(torch.full((20, 1, 4, 4), 0.5), seed=0)
    bank = transform.bank
    assert bank.shape == (4, 1, 4, 4)
    assert float(bank.std()) == pytest.approx(0.1, rel=0.35)
    transform.low, transform.high = -10.0, 10.0  # no clipping, to read the clips back
    x = torch.rand(12, 1, 4, 4)
    added = transform(x) - x
    for row in added:
        assert min(float((row - clip).abs().max()) for clip in bank) < 1e-6


def test_shift_moves_each_example_by_at_most_its_pixels():
    x = torch.zeros(64, 1, 8, 8)
    x[:, 0, 3:5, 3:5] = 1.0  # a blob in the middle, centre of mass (3.5, 3.5)
    assert torch.allclose(Shift(pixels=0.0)(x), x, atol=1e-6)
    torch.manual_seed(0)
    out = Shift(pixels=1.0)(x)
    grid = torch.arange(8.0)
    mass = out.sum(dim=(1, 2, 3))
    rows = (out.sum(dim=3)[:, 0] * grid).sum(dim=1) / mass - 3.5
    cols = (out.sum(dim=2)[:, 0] * grid).sum(dim=1) / mass - 3.5
    assert torch.allclose(mass, torch.full((64,), 4.0), atol=1e-4)  # ink kept (bilinear)
    assert rows.abs().max() <= 1.0 + 1e-5 and cols.abs().max() <= 1.0 + 1e-5
    assert rows.std() > 0.3 and cols.std() > 0.3  # a draw per example, not one per batch


def test_pool_warning_fires_on_a_tiny_pool_and_not_on_a_large_one():
    target = torch.rand(50, 1, 8, 8)
    tiny, large = TargetNoise(clips=5), TargetNoise(clips=2000)
    tiny.fit(target, seed=0)
    large.fit(target, seed=0)
    small = pool_report([tiny], synthesized=10_000)
    assert len(small["warnings"]) == 1
    assert "5 distinct noise clips for 10,000" in small["warnings"][0]
    assert small["transforms"][0]["reuse"] == 2000
    fine = pool_report([large, torch.nn.Identity()], synthesized=10_000)
    assert fine["warnings"] == []
    assert fine["transforms"][1] == {"transform": "Identity", "pool": None}
    lines = "\n".join(synthesis_lines({**small, "probability": 1.0}))
    assert "> Warning: TargetNoise draws from 5 distinct noise clips" in lines
    assert "> Warning" not in "\n".join(synthesis_lines(fine))


def test_an_unfit_transform_says_so():
    with pytest.raises(RuntimeError, match="not fit"):
        TargetNoise()(torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match="clips=0"):
        TargetNoise(clips=0)
    assert np.isfinite(estimate_noise_std(torch.rand(3, 5)))
