"""Multi-task learning: one shared trunk, one head per task, a cost that skips missing labels.

The course's example (Structuring ML projects, week 2) is one image labelled for pedestrians,
cars, stop signs and traffic lights at once. One network with a shared trunk and an output per
label learns features the tasks share; some images lack some labels, and the cost sums only
over the labels present::

    J = sum_t  w_t * 1/m_t sum_{i: y_t(i) present} L(y_hat_t(i), y_t(i))

where ``t`` runs over the label columns (tasks), ``w_t`` is the loss weight of the head that
predicts column ``t`` and ``m_t`` the number of present labels of that column in the batch.
A missing label (``-1`` for a class label, ``NaN`` for a real-valued one) adds nothing to
``J`` or to its gradient; a batch with no label for a task adds 0 for that task.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn

from mlstrategy.metrics.masking import present_mask
from mlstrategy.models.backbones import source_module
from mlstrategy.models.base import SupervisedModule
from mlstrategy.models.conv import CNN, GlobalPoolName
from mlstrategy.models.deep import MLP, Activation
from mlstrategy.models.heads import Head, Task, build_tasks, check_heads, head_losses
from mlstrategy.models.init import InitName, initialize
from mlstrategy.run_folder import run_checkpoint

TrunkName = Literal["mlp", "cnn", "pretrained"]
TRUNKS: tuple[str, ...] = ("mlp", "cnn", "pretrained")


class MultiTaskNetwork(nn.Module):
    """The plain network a :class:`MultiTaskNet` trains: trunk(s) and one linear head per task.

    With ``shared=True`` one trunk computes features ``A`` that every head reads (multi-task
    learning); with ``shared=False`` each head gets its own trunk, built the same way: one
    single-task network per head, side by side (the baseline multi-task learning is measured
    against). The trunk's own output layer is removed: a trunk must offer
    ``forward_features`` and ``num_features`` (as :class:`~mlstrategy.models.MLP` and
    :class:`~mlstrategy.models.CNN` do).

    Args:
        make_trunk: Builds one trunk.
        head_units: ``{head name: output units}``.
        shared: One trunk for all heads, or one per head.
        init: Initialization of the heads' weights.

    Example:
        >>> net = MultiTaskNetwork(lambda: MLP(4, [8], 1), {"car": 1, "kind": 3})
        >>> {k: v.shape for k, v in net(torch.zeros(5, 4)).items()}
        {'car': torch.Size([5, 1]), 'kind': torch.Size([5, 3])}
    """

    def __init__(
        self,
        make_trunk: Callable[[], nn.Module],
        head_units: Mapping[str, int],
        shared: bool = True,
        init: InitName = "he",
    ) -> None:
        super().__init__()
        self.shared = shared

        def trunk() -> nn.Module:
            module = make_trunk()
            module.head = nn.Identity()  # the heads below replace its output layer
            return module

        if shared:
            self.trunk = trunk()
            self.num_features = int(cast(Any, self.trunk).num_features)
            features = dict.fromkeys(head_units, self.num_features)
        else:
            self.trunks = nn.ModuleDict({name: trunk() for name in head_units})
            features = {name: int(cast(Any, t).num_features) for name, t in self.trunks.items()}
        self.heads = nn.ModuleDict(
            {name: nn.Linear(features[name], units) for name, units in head_units.items()}
        )
        initialize(self.heads, init)

    def forward_features(self, x: Tensor) -> Tensor:
        """The shared trunk's features ``A``, shape ``(m, num_features)`` (shared trunk only)."""
        if not self.shared:
            raise RuntimeError("forward_features needs a shared trunk (shared=True).")
        return cast(Tensor, cast(Any, self.trunk).forward_features(x))

    def forward_head(self, a: Tensor) -> dict[str, Tensor]:
        """Every head's output from the shared features ``a``."""
        return {name: head(a) for name, head in self.heads.items()}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if self.shared:
            return self.forward_head(self.forward_features(x))
        return {
            name: head(cast(Any, self.trunks[name]).forward_features(x))
            for name, head in self.heads.items()
        }


class MultiTaskNet(SupervisedModule):
    """A shared trunk and one head per task, trained on a cost that skips missing labels.

    The trunk is a deep net (``mlp``: :class:`~mlstrategy.models.MLP`) or a conv net
    (``cnn``: :class:`~mlstrategy.models.CNN`) without its output layer; the heads are named in
    the recipe, each ``binary``, ``multilabel``, ``multiclass`` or ``regression`` with its own
    loss weight::

        heads:
          pedestrian: {kind: binary}
          car: {kind: binary, loss_weight: 2.0}
          signs: {kind: multilabel, columns: [stop_sign, traffic_light]}

    The cost is the weighted sum of every task's cost averaged over its present labels (see
    the module docstring); input normalization, L2, the optimizer and the cost curve are those
    of :class:`~mlstrategy.models.base.SupervisedModule`. ``test_step`` returns each task's
    outputs and labels; the scorer (:class:`~mlstrategy.evaluation.scoring.SplitScorer`) scores
    every task (label column) on its present labels: precision, recall, F1 and error for class
    labels, squared and absolute error for real values.

    Args:
        input_shape: Shape of one example; from the data.
        heads: ``{name: head}``, see :class:`~mlstrategy.models.heads.Head`. A head reads the
            label column of its name unless its ``columns`` say otherwise.
        num_classes: ``{label column: number of classes}`` (0 for real values), in the order of
            the data's label matrix; filled in from the data by the CLI. Without it the label
            matrix is taken to hold the heads' columns in order.
        shared_trunk: One trunk for every head (multi-task learning). ``false`` gives each head
            its own trunk of the same size: one single-task network per head, trained side by
            side (the baseline to compare with; each trunk gets gradient from its head only).
        trunk: ``mlp`` (dense layers, inputs flattened), ``cnn`` (conv blocks) or
            ``pretrained``: the network of an earlier run's DeepNet or ConvNet (``pretrained``
            names its checkpoint, run folder or recipe folder), output layer removed, weights
            kept and trained further (transfer learning into the shared trunk).
        pretrained: With ``trunk: pretrained``: the earlier run to take the trunk from.
        layer_dims: ``mlp``: the hidden-layer sizes; ``cnn``: dense hidden layers after the conv
            blocks (may be ``[]``).
        channels: ``cnn`` only: output channels of each conv block.
        kernel_size: ``cnn`` only: filter size of every convolution.
        pool_sizes: ``cnn`` only: max-pooling window after each block (1 = none).
        global_pool: ``cnn`` only: ``avg``, ``max`` or ``flatten`` of the last feature map.
        activation: Hidden activation: ``relu``, ``tanh``, ``sigmoid`` or ``leaky_relu``.
        keep_prob: Inverted-dropout keep probability of the trunk's layers, in (0, 1].
        batch_norm: Batch-normalize the trunk's hidden ``Z``.
        init: Weight initialization of trunk and heads: ``he``, ``xavier``, ``small_random`` or
            ``zeros``.
        **kwargs: Cost and optimizer settings of
            :class:`~mlstrategy.models.base.SupervisedModule` (``optimizer``,
            ``learning_rate``, ``l2_lambda``, ``lr_decay``, ``compile``, ...).

    Example:
        >>> net = MultiTaskNet((4,), {"car": Head("binary"), "size": Head("regression")},
        ...                    layer_dims=[8])
        >>> y = torch.tensor([[1.0, 0.5], [-1.0, float("nan")]])  # second example: no labels
        >>> bool(torch.isfinite(net.cost(net(torch.zeros(2, 4)), y)))
        True
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        heads: dict[str, Head],
        num_classes: dict[str, int] | None = None,
        shared_trunk: bool = True,
        trunk: TrunkName = "mlp",
        pretrained: str | None = None,
        layer_dims: Sequence[int] = (64, 32),
        channels: Sequence[int] = (16, 32),
        kernel_size: int = 3,
        pool_sizes: int | Sequence[int] = 2,
        global_pool: GlobalPoolName = "avg",
        activation: Activation = "relu",
        keep_prob: float | Sequence[float] = 1.0,
        batch_norm: bool = False,
        init: InitName = "he",
        **kwargs: Any,
    ) -> None:
        super().__init__(input_shape, **kwargs)
        if trunk not in TRUNKS:
            raise ValueError(f"trunk={trunk!r} is not one of {list(TRUNKS)}.")
        if (trunk == "pretrained") != (pretrained is not None):
            raise ValueError(
                f"trunk={trunk!r} with pretrained={pretrained!r}: give `pretrained` (an earlier "
                "run's checkpoint or folder) exactly when trunk is 'pretrained'."
            )
        source_net = self._pretrained_trunk(pretrained) if pretrained is not None else None
        specs, self.label_names, self.label_classes = check_heads(heads, num_classes)
        self.heads = specs
        # Plain values only: checkpoints are loaded with weights_only=True.
        plain = {name: asdict(h) for name, h in specs.items()}
        cast(dict, self.hparams)["heads"] = plain
        cast(dict, self._hparams_initial)["heads"] = plain

        n_x = math.prod(self.input_shape)

        def make_trunk() -> nn.Module:
            if source_net is not None:
                return copy.deepcopy(source_net)  # one copy per trunk when trunks are separate
            if trunk == "mlp":
                return MLP(n_x, layer_dims, 1, activation, keep_prob, batch_norm, init)
            return CNN(
                self.input_shape,
                1,
                channels=channels,
                kernel_size=kernel_size,
                pool_sizes=pool_sizes,
                global_pool=global_pool,
                hidden_dims=layer_dims,
                activation=activation,
                keep_prob=keep_prob,
                batch_norm=batch_norm,
                init=init,
            )

        units = {
            name: h.num_classes or 0 if h.kind == "multiclass" else len(h.columns or [])
            for name, h in specs.items()
        }
        self.net = MultiTaskNetwork(make_trunk, units, shared=shared_trunk, init=init)
        self.tasks: list[Task] = build_tasks(specs, self.label_names, self.label_classes)
        self._head_columns = {
            name: [self.label_names.index(c) for c in h.columns or []] for name, h in specs.items()
        }
        self._head_class_column = {
            name: all(self.label_classes[c] > 0 for c in h.columns or [])
            for name, h in specs.items()
        }

    def _pretrained_trunk(self, pretrained: str) -> nn.Module:
        """The network of the earlier run ``pretrained`` names, checked against the inputs."""
        source = source_module(run_checkpoint(pretrained))
        if tuple(source.input_shape) != self.input_shape:
            raise ValueError(
                f"pretrained={pretrained!r} was trained on inputs of shape "
                f"{tuple(source.input_shape)}, this data has {self.input_shape}."
            )
        return source.net

    # ------------------------------------------------------------------------------- model
    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Each head's output: ``binary`` logits ``(m,)``; ``multilabel`` and ``multiclass``
        logits ``(m, C)``; ``regression`` predictions ``(m, C)``."""
        out = self.forward_net(x)
        return {
            name: z.squeeze(-1) if self.heads[name].kind == "binary" else z
            for name, z in out.items()
        }

    def task_costs(self, outputs: Mapping[str, Tensor], y: Tensor) -> dict[str, Tensor]:
        """``{label column: its cost averaged over the present labels}`` (0 when none is)."""
        costs: dict[str, Tensor] = {}
        for name, head in self.heads.items():
            z = outputs[name]
            z = z.unsqueeze(-1) if head.kind == "binary" else z
            target = y[:, self._head_columns[name]]
            present = present_mask(target, self._head_class_column[name])
            losses = head_losses(head.kind, z, target.to(z.dtype), present)
            columns = head.columns or []
            if head.kind == "multiclass":
                costs[columns[0]] = losses[0]
            else:
                costs.update(zip(columns, losses.unbind(0), strict=True))
        return costs

    def cost(self, outputs: Mapping[str, Tensor], y: Tensor) -> Tensor:
        """The multi-task cost ``J = sum_t w_t * J_t`` over the present labels (module docstring).

        Args:
            outputs: The output of :meth:`forward`, ``{head: output}``.
            y: Labels ``(m, L)`` with ``-1`` / ``NaN`` for missing ones.
        """
        costs = self.task_costs(outputs, y)
        total = torch.zeros((), device=y.device)
        for head in self.heads.values():
            for col in head.columns or []:
                total = total + head.loss_weight * costs[col]
        return total

    def predict_labels(self, outputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Each head's prediction: 0/1 (``binary``, ``multilabel``: ``a > 0.5``), the class
        (``multiclass``: ``argmax``) or the value (``regression``)."""
        out = {}
        for name, z in outputs.items():
            kind = self.heads[name].kind
            if kind == "regression":
                out[name] = z
            elif kind == "multiclass":
                out[name] = z.argmax(dim=-1)
            else:
                out[name] = (z > 0).long()
        return out

    def predict_proba(self, outputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Each head's probabilities: ``sigmoid`` per unit (``binary``, ``multilabel``), a
        ``softmax`` (``multiclass``); ``regression`` heads give their predictions."""
        out = {}
        for name, z in outputs.items():
            kind = self.heads[name].kind
            if kind == "regression":
                out[name] = z.float()
            elif kind == "multiclass":
                out[name] = torch.softmax(z.float(), dim=-1)
            else:
                out[name] = torch.sigmoid(z.float())
        return out

    def task_outputs(self, outputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``{task: its outputs}``: one unit's logits (``binary``, ``multilabel``), the logits
        of the softmax (``multiclass``), or one unit's values (``regression``)."""
        out = {}
        for task in self.tasks:
            z = outputs[task.head]
            out[task.name] = z[:, task.unit] if task.kind in ("multilabel", "regression") else z
        return out

    # ------------------------------------------------------------------------- evaluation
    def test_step(
        self, batch: tuple[Tensor, Tensor], batch_idx: int
    ) -> dict[str, dict[str, Tensor]]:
        """One test batch for the split's scorer: ``{"outputs": {task: outputs}, "targets":
        {task: labels}}``, missing labels included (the scorer skips them)."""
        x, y = batch
        targets = {task.name: y[:, task.column] for task in self.tasks}
        return {"outputs": self.task_outputs(self(x)), "targets": targets}
