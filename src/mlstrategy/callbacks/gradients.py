"""The gradient norm of each layer per epoch: vanishing and exploding gradients as a picture."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from mlstrategy.callbacks.lean import LeanCallback

GRAD_NORM_TAG = "grad_norm"  # TensorBoard: grad_norm/layer_<l> per epoch


def layer_groups(module: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """The network's layers in the course's numbering, each with its parameters.

    A layer starts at each module that owns a weight matrix or kernel (a parameter called
    ``weight`` with 2 or more dimensions: linear and convolution layers); the 1-D parameters
    that follow it (its bias, batch norm's ``gamma`` and ``beta``) belong to it. Names are
    ``layer_1`` ... ``layer_L`` (zero-padded from 10 layers on, so they sort), the output
    layer last.

    Example:
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
        >>> [(name, len(params)) for name, params in layer_groups(net)]
        [('layer_1', 4), ('layer_2', 2)]
    """
    groups: list[list[nn.Parameter]] = []
    for sub in module.modules():
        own = list(sub.parameters(recurse=False))
        if not own:
            continue
        weight = getattr(sub, "weight", None)
        starts = isinstance(weight, torch.Tensor) and weight.ndim >= 2
        if starts or not groups:
            groups.append([])
        groups[-1].extend(own)
    width = len(str(len(groups))) if len(groups) >= 10 else 1
    return [(f"layer_{i + 1:0{width}d}", params) for i, params in enumerate(groups)]


class GradientNorms(LeanCallback):
    """Log ``grad_norm/layer_<l>`` each epoch: the root mean square, over the epoch's optimizer
    steps, of the L2 norm of layer ``l``'s gradient (all its parameters together:
    ``||(dW[l], db[l], dgamma[l], dbeta[l])||_2``), as :func:`layer_groups` numbers the layers
    of the trained module.

    With vanishing gradients the first layers' norms sit orders of magnitude below the last
    layer's; with exploding ones they grow epoch by epoch. The report of a lesson study draws
    them (:func:`~mlstrategy.reporting.curves.grad_norm_figure`).

    No step waits on the host: before each optimizer step one ``torch._foreach_norm`` takes
    every gradient's norm on the device, and their squares are added into a device buffer in
    place. The buffer reaches the host once per epoch. It is active only when the trainer has
    a logger (a fit without one logs nothing, so it then costs nothing); a frozen parameter
    (no gradient) is left out of the steps it was frozen for.

    Attributes:
        history: One ``{"epoch": e, "layer_1": norm, ...}`` per epoch of this fit.
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: list[dict[str, float]] = []
        self._params: list[nn.Parameter] = []
        self._layers: list[str] = []
        self._layer_of: list[int] = []  # each parameter's layer index
        self._squares = torch.zeros(0)  # per parameter: the sum of its squared norms
        self._steps: dict[tuple[int, ...], int] = {}  # steps per set of parameters with grads
        self._index: dict[tuple[int, ...], torch.Tensor] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.history = []
        net = getattr(pl_module, "net", pl_module)
        groups = layer_groups(net) if trainer.loggers else []
        self._layers = [name for name, _ in groups]
        self._params = [p for _, params in groups for p in params]
        self._layer_of = [i for i, (_, params) in enumerate(groups) for _ in params]
        self._reset(pl_module.device)
        # Inactive (no logger): Lightning's dispatcher then skips the per-step hook, as it
        # skips a LeanCallback's unused ones; a later fit with a logger brings it back.
        if self._params:
            self.__dict__.pop("on_before_optimizer_step", None)
        else:
            setattr(self, "on_before_optimizer_step", None)  # noqa: B010  (a method otherwise)

    def _reset(self, device: torch.device) -> None:
        self._squares = torch.zeros(len(self._params), device=device)
        self._steps = {}

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if not self._params:
            return
        present = tuple(i for i, p in enumerate(self._params) if p.grad is not None)
        if not present:
            return
        grads = [self._params[i].grad for i in present]
        norms = torch.stack(torch._foreach_norm(grads)).float()  # type: ignore[arg-type]
        if self._squares.device != norms.device:
            self._squares = self._squares.to(norms.device)
        if len(present) == len(self._params):
            self._squares.addcmul_(norms, norms)
        else:
            index = self._index.get(present)
            if index is None or index.device != norms.device:
                index = self._index[present] = torch.tensor(present, device=norms.device)
            self._squares.index_add_(0, index, norms * norms)
        self._steps[present] = self._steps.get(present, 0) + 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._params or not self._steps:
            return
        squares = self._squares.tolist()  # the epoch's one copy to the host
        steps = [0] * len(self._params)
        for present, n in self._steps.items():
            for i in present:
                steps[i] += n
        per_layer = [0.0] * len(self._layers)
        counted = [0] * len(self._layers)
        for i, (square, n) in enumerate(zip(squares, steps, strict=True)):
            if n:
                # Mean over the steps this parameter trained in; the layer's squares add up.
                per_layer[self._layer_of[i]] += square / n
                counted[self._layer_of[i]] += 1
        epoch = trainer.current_epoch
        norms = {name: per_layer[k] ** 0.5 for k, name in enumerate(self._layers) if counted[k]}
        self.history.append({"epoch": float(epoch), **norms})
        for logger in trainer.loggers:
            logger.log_metrics({f"{GRAD_NORM_TAG}/{k}": v for k, v in norms.items()}, step=epoch)
        self._reset(self._squares.device)
