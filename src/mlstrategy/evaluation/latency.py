"""Inference latency: the satisficing metric a deployed model is most often held to."""

from __future__ import annotations

import statistics
import time

import torch


@torch.no_grad()
def measure_latency(
    model: torch.nn.Module,
    example: torch.Tensor,
    repeats: int = 50,
    warmup: int = 5,
    device: torch.device | str | None = None,
) -> float:
    """Milliseconds to predict one example: the median of ``repeats`` timed forward passes.

    One example per pass, as a request arrives in serving; eval mode (dropout off), no
    gradients. The median ignores the odd pass slowed by another process. On CUDA the
    device is synchronized around each pass so the time covers the kernels, not just their
    launch. The model is returned to its device and training mode afterwards.

    Args:
        model: The model; called as ``model(x)`` with ``x`` of shape ``(1, *input_shape)``.
        example: One example, shape ``input_shape`` (a batch dimension is added).
        repeats: Timed passes; at least 1.
        warmup: Untimed passes first (allocator, kernel selection, caches).
        device: Where to time it; default the model's device.

    Returns:
        Median latency in milliseconds.

    Example:
        >>> net = torch.nn.Linear(30, 1)
        >>> ms = measure_latency(net, torch.zeros(30), repeats=5)
        >>> 0 < ms < 1000
        True
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1.")
    params = list(model.parameters())
    home = params[0].device if params else torch.device("cpu")
    target = torch.device(device) if device is not None else home
    was_training = model.training
    model.eval()
    model.to(target)
    x = example.to(target).unsqueeze(0)
    sync = torch.cuda.synchronize if target.type == "cuda" else (lambda: None)
    times = []
    try:
        for i in range(warmup + repeats):
            sync()
            start = time.perf_counter()
            model(x)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    finally:
        model.to(home)
        model.train(was_training)
    return 1000.0 * statistics.median(times)
