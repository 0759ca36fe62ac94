"""A regressor's predictions on every split, for the report's predicted-vs-true and residual
figures (the scores themselves come from :mod:`mlstrategy.evaluation.scoring`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


@torch.no_grad()
def split_predictions(
    model: Any, datamodule: Any, batch_size: int = 4096
) -> dict[str, dict[str, np.ndarray]]:
    """``{split: {"pred", "true"}}``: the model's predictions and the targets of every split
    of an in-memory data module, in the target's units, in eval mode (dropout off).

    Args:
        model: A trained regressor (``predict_values`` turns its outputs into target units).
        datamodule: Its data module (``prepare()`` gives ``{split: (x, y)}``).
        batch_size: Examples per forward pass.

    Example:
        >>> from mlstrategy.models.linear import LinearRegression
        >>> class Data:
        ...     def prepare(self):
        ...         return {"dev": (torch.ones(3, 2), torch.tensor([1.0, 2.0, 3.0]))}
        >>> out = split_predictions(LinearRegression((2,)), Data())
        >>> out["dev"]["pred"].tolist(), out["dev"]["true"].tolist()
        ([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    """
    prepare = getattr(datamodule, "prepare", None)
    if not callable(prepare):
        return {}
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: dict[str, dict[str, np.ndarray]] = {}
    try:
        for split, (x, y) in prepare().items():
            parts = [
                model.predict_values(model(x[i : i + batch_size].to(device))).float().cpu()
                for i in range(0, len(x), batch_size)
            ]
            pred = torch.cat(parts) if parts else torch.zeros(0)
            out[split] = {"pred": pred.numpy(), "true": y.float().cpu().numpy()}
    finally:
        model.train(was_training)
    return out
