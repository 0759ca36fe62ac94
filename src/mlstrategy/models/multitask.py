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
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection, SumMetric
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError

from mlstrategy.metrics.classification import (
    classification_metrics,
    per_class_metrics,
    per_class_table,
)
from mlstrategy.models.classifier import ClassifierModule
from mlstrategy.models.conv import CNN, GlobalPoolName
from mlstrategy.models.deep import MLP, Activation
from mlstrategy.models.init import InitName, initialize

HeadKind = Literal["binary", "multilabel", "multiclass", "regression"]
HEAD_KINDS: tuple[str, ...] = ("binary", "multilabel", "multiclass", "regression")
TrunkName = Literal["mlp", "cnn", "pretrained"]
TRUNKS: tuple[str, ...] = ("mlp", "cnn", "pretrained")


@dataclass
class Head:
    """One output head of a :class:`MultiTaskNet`, declared in the recipe under its name.

    Args:
        kind: ``binary`` (one sigmoid unit reading one 0/1 label column), ``multilabel``
            (one sigmoid unit per column, several 0/1 columns: the course's four-label car
            image in a single head), ``multiclass`` (a softmax over the classes of one column)
            or ``regression`` (one linear unit per column of real numbers, squared-error cost).
        columns: The label columns this head predicts; default ``[head name]``. ``binary`` and
            ``multiclass`` heads read exactly one column.
        num_classes: ``multiclass`` only: number of classes; default from the data.
        loss_weight: Weight ``w >= 0`` of each of this head's task costs in the total cost;
            0 keeps the head (it is evaluated) but does not train it.
    """

    kind: HeadKind = "binary"
    columns: list[str] | None = None
    num_classes: int | None = None
    loss_weight: float = 1.0


@dataclass
class Task:
    """One label column and the head that predicts it (the unit of the per-task scores).

    Attributes:
        name: The label column.
        head: The head's name.
        kind: The head's kind.
        column: Index of the column in the label matrix ``y``.
        unit: Index of this task's output unit within the head (``binary``: 0; ``multiclass``:
            0, the whole softmax is one task).
        num_classes: Classes of the task (2 for ``binary`` and ``multilabel``), 0 for
            ``regression``.
        class_column: True when the column holds class labels (missing = ``-1``).
        class_names: One name per class, for the per-class scores.
    """

    name: str
    head: str
    kind: str
    column: int
    unit: int
    num_classes: int
    class_column: bool
    class_names: list[str] = field(default_factory=list)


def present_mask(y: Tensor, class_column: bool) -> Tensor:
    """Which labels are present: ``y >= 0`` in a column of class labels (missing = ``-1``),
    finite in a column of real numbers (missing = ``NaN``).

    Example:
        >>> present_mask(torch.tensor([1.0, -1.0, 0.0, float("nan")]), True).tolist()
        [True, False, True, False]
        >>> present_mask(torch.tensor([-1.5, float("nan")]), False).tolist()
        [True, False]
    """
    finite = torch.isfinite(y)
    return finite & (y >= 0) if class_column else finite


def masked_mean(values: Tensor, present: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``values`` over the present entries; 0 where none is present.

    ``torch.where`` routes a zero gradient to the missing entries, so they get exactly zero
    gradient; their values must still be finite (the callers replace missing targets before
    computing ``values``), because ``0 * inf`` would be ``NaN``.

    Example:
        >>> masked_mean(torch.tensor([1.0, 5.0, 3.0]), torch.tensor([True, False, True]))
        tensor(2.)
        >>> masked_mean(torch.tensor([1.0]), torch.tensor([False]))
        tensor(0.)
    """
    kept = torch.where(present, values, torch.zeros_like(values))
    if dim is None:
        return kept.sum() / present.sum().clamp(min=1)
    return kept.sum(dim) / present.sum(dim).clamp(min=1)


def head_losses(kind: str, z: Tensor, y: Tensor, present: Tensor) -> Tensor:
    """Each task's cost averaged over its present labels, for one head.

    Args:
        kind: The head's kind.
        z: The head's output: logits ``(m, C)`` (``binary``: ``C = 1``; ``multiclass``:
            ``C`` classes) or predictions ``(m, C)`` (``regression``).
        y: The head's label columns ``(m, C)`` (``multiclass``: ``(m, 1)``), missing entries
            included.
        present: Which entries of ``y`` are present, same shape as ``y``.

    Returns:
        One cost per task (column), shape ``(C,)`` (``multiclass``: ``(1,)``): binary
        cross-entropy ``-[y log a + (1-y) log(1-a)]``, softmax cross-entropy ``-log a_y``, or
        squared error ``(y_hat - y)^2``, each averaged over the present labels only.
    """
    safe = torch.where(present, y, torch.zeros_like(y))  # missing targets never reach a cost
    if kind == "multiclass":
        elem = F.cross_entropy(z, safe[:, 0].long(), reduction="none")
        return masked_mean(elem, present[:, 0]).unsqueeze(0)
    if kind == "regression":
        elem = (z - safe) ** 2
    else:
        elem = F.binary_cross_entropy_with_logits(z, safe, reduction="none")
    return masked_mean(elem, present, dim=0)


class TaskScores(nn.Module):
    """The running scores of one task over a split: only its present labels are fed in.

    Class labels: accuracy, precision, recall, F1 (:func:`~mlstrategy.metrics.classification.
    classification_metrics`), per-class scores and the confusion matrix; real values: squared
    and absolute error. Also the task's cost over its present labels and their number.

    Args:
        task: The task.
    """

    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task = task
        self.scores = (
            MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError()})
            if task.kind == "regression"
            else classification_metrics(task.num_classes)
        )
        self.per_class = per_class_metrics(task.num_classes) if task.kind != "regression" else None
        self.cost = MeanMetric()
        self.count = SumMetric()

    def update(self, z: Tensor, target: Tensor) -> None:
        """Add a batch: the task's outputs ``z`` (logit(s) or values) and labels, missing ones
        included; only present labels are scored."""
        task = self.task
        present = present_mask(target, task.class_column)
        n = int(present.sum())
        self.count.update(n)
        if n == 0:
            return
        z, t = z[present], target[present]
        # The cost of each task over its present labels, as in training (head_losses).
        if task.kind == "regression":
            self.cost.update(F.mse_loss(z, t.to(z.dtype)), weight=n)
            self.scores.update(z.float(), t.float())
            return
        t = t.long()
        if task.kind == "multiclass":
            cost, pred = F.cross_entropy(z, t), z.argmax(dim=-1)
        else:
            cost, pred = F.binary_cross_entropy_with_logits(z, t.to(z.dtype)), (z > 0).long()
        self.cost.update(cost, weight=n)
        self.scores.update(pred, t)
        assert self.per_class is not None
        self.per_class.update(pred, t)

    def compute(self) -> dict[str, Any]:
        """The task's row: ``kind``, ``head``, ``n`` and its scores, or ``no_labels``."""
        task = self.task
        n = int(self.count.compute())
        row: dict[str, Any] = {"kind": task.kind, "head": task.head, "n": n}
        if n == 0:
            row["no_labels"] = True
            return row
        row.update({k: float(v) for k, v in self.scores.compute().items()})
        row["loss"] = float(self.cost.compute())
        if self.per_class is not None:
            row["error"] = 1.0 - row["accuracy"]
            details = {k: v.detach().cpu() for k, v in self.per_class.compute().items()}
            row["per_class"] = per_class_table(details, task.class_names or None)
            row["confusion_matrix"] = details["confusion_matrix"].tolist()
        return row

    def reset(self) -> None:
        for metric in (self.scores, self.per_class, self.cost, self.count):
            if metric is not None:
                metric.reset()


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


def _check_heads(
    heads: Mapping[str, Head | Mapping[str, Any]], data_classes: Mapping[str, int] | None
) -> tuple[dict[str, Head], list[str], dict[str, int]]:
    """Validate the recipe's heads against the data's label columns.

    Returns:
        ``(heads, label_names, classes)``: the heads as :class:`Head` with ``columns`` and
        (multiclass) ``num_classes`` filled in, the label columns in the order of ``y``, and
        ``{column: number of classes}`` (0 for real-valued columns).
    """
    if not heads:
        raise ValueError(
            "heads={} declares no head. Give one per task, e.g. heads: {car: {kind: binary}, "
            "pedestrian: {kind: binary}}, named after the data's label columns."
        )
    out: dict[str, Head] = {}
    for name, given in heads.items():
        head = Head(**given) if isinstance(given, Mapping) else Head(**asdict(given))
        where = f"heads.{name}"
        if not name or "." in name:
            raise ValueError(f"heads: the name {name!r} cannot be empty or contain '.'.")
        if head.kind not in HEAD_KINDS:
            raise ValueError(f"{where}.kind={head.kind!r} is not one of {list(HEAD_KINDS)}.")
        weight = head.loss_weight
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
            raise ValueError(
                f"{where}.loss_weight={weight} must be a number >= 0 (1 = as much as every other "
                "task; 0 = evaluate the head but do not train it)."
            )
        head.columns = list(head.columns) if head.columns is not None else [name]
        if not head.columns:
            raise ValueError(f"{where}.columns=[] names no label column.")
        if head.kind in ("binary", "multiclass") and len(head.columns) != 1:
            raise ValueError(
                f"{where}.columns={head.columns}: a {head.kind} head reads exactly one column; "
                "use kind: multilabel for several 0/1 columns, or one head per column."
            )
        if head.num_classes is not None:
            if head.kind != "multiclass":
                raise ValueError(
                    f"{where}.num_classes={head.num_classes}: only a multiclass head takes "
                    "num_classes."
                )
            if head.num_classes < 2:
                raise ValueError(f"{where}.num_classes={head.num_classes} must be >= 2.")
        out[name] = head

    readers: dict[str, str] = {}
    for name, head in out.items():
        assert head.columns is not None
        for col in head.columns:
            if col in readers:
                raise ValueError(
                    f"Label column {col!r} is read by two heads, heads.{readers[col]} and "
                    f"heads.{name}; give each column to one head."
                )
            readers[col] = name

    if data_classes is None:  # no data: the heads' columns, in order, are the label matrix
        label_names = list(readers)
        classes: dict[str, int] = {}
        for head in out.values():
            assert head.columns is not None
            for col in head.columns:
                if head.kind == "multiclass":
                    if head.num_classes is None:
                        raise ValueError(
                            f"heads.{readers[col]}.num_classes is needed without data to take "
                            "it from."
                        )
                    classes[col] = head.num_classes
                else:
                    classes[col] = 2 if head.kind in ("binary", "multilabel") else 0
        return out, label_names, classes

    label_names = list(data_classes)
    classes = {k: int(v) for k, v in data_classes.items()}
    for name, head in out.items():
        assert head.columns is not None
        for col in head.columns:
            if col not in classes:
                columns = "columns" if head.columns != [name] else "columns (default: its name)"
                raise ValueError(
                    f"heads.{name}.{columns}: the data has no label column {col!r}; its label "
                    f"columns are {label_names}. Name the head after a label column or set "
                    f"heads.{name}.columns."
                )
            k = classes[col]
            if head.kind in ("binary", "multilabel") and k != 2:
                fix = "kind: regression" if k == 0 else "kind: multiclass"
                what = "real numbers" if k == 0 else f"{k} classes"
                raise ValueError(
                    f"heads.{name}.kind={head.kind!r}, but label column {col!r} holds {what}, "
                    f"not 0/1; use {fix}."
                )
            if head.kind == "multiclass":
                if k == 0:
                    raise ValueError(
                        f"heads.{name}.kind='multiclass', but label column {col!r} holds real "
                        "numbers; use kind: regression."
                    )
                if head.num_classes is None:
                    head.num_classes = k
                elif head.num_classes < k:
                    raise ValueError(
                        f"heads.{name}.num_classes={head.num_classes}, but label column {col!r} "
                        f"has {k} classes."
                    )
    return out, label_names, classes


class MultiTaskNet(ClassifierModule):
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
    the module docstring); L2, the optimizer and the learning curve are those of
    :class:`~mlstrategy.models.ClassifierModule`. Evaluation scores every task (label column)
    on its present labels: precision, recall, F1 and error for class labels, squared and
    absolute error for real values; see :mod:`mlstrategy.evaluation.multitask`.

    Args:
        input_shape: Shape of one example; from the data.
        heads: ``{name: head}``, see :class:`Head`. A head reads the label column of its name
            unless its ``columns`` say otherwise.
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
        **kwargs: Cost and optimizer settings of :class:`ClassifierModule` (``optimizer``,
            ``learning_rate``, ``l2_lambda``, ``lr_decay``, ...).

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
        # The base's num_classes sizes a single-task output; each head here has its own, so a
        # placeholder 2 goes to the base and the data's {column: classes} stays in hparams.
        super().__init__(input_shape, 2, **kwargs)
        if trunk not in TRUNKS:
            raise ValueError(f"trunk={trunk!r} is not one of {list(TRUNKS)}.")
        if (trunk == "pretrained") != (pretrained is not None):
            raise ValueError(
                f"trunk={trunk!r} with pretrained={pretrained!r}: give `pretrained` (an earlier "
                "run's checkpoint or folder) exactly when trunk is 'pretrained'."
            )
        source_net: nn.Module | None = None
        if pretrained is not None:
            from mlstrategy.models.transfer import resolve_checkpoint, source_module

            source = source_module(resolve_checkpoint(pretrained))
            if tuple(source.input_shape) != tuple(input_shape):
                raise ValueError(
                    f"pretrained={pretrained!r} was trained on inputs of shape "
                    f"{tuple(source.input_shape)}, this data has {tuple(input_shape)}."
                )
            source_net = source.net
        specs, self.label_names, self.label_classes = _check_heads(heads, num_classes)
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

        units: dict[str, int] = {}
        for name, h in specs.items():
            assert h.columns is not None
            units[name] = h.num_classes or 0 if h.kind == "multiclass" else len(h.columns)
        self.net = MultiTaskNetwork(make_trunk, units, shared=shared_trunk, init=init)

        self.tasks: list[Task] = []
        for name, h in specs.items():
            assert h.columns is not None
            for unit, col in enumerate(h.columns):
                k = self.label_classes[col]
                self.tasks.append(
                    Task(
                        name=col,
                        head=name,
                        kind=h.kind,
                        column=self.label_names.index(col),
                        unit=unit,
                        num_classes=0 if h.kind == "regression" else (h.num_classes or 2),
                        class_column=k > 0,
                    )
                )
        self._head_columns = {
            name: [self.label_names.index(c) for c in h.columns or []] for name, h in specs.items()
        }
        self._head_class_column = {
            name: all(self.label_classes[c] > 0 for c in h.columns or [])
            for name, h in specs.items()
        }
        # Scores per task, fed only that task's present labels. The typed list is for reading;
        # the ModuleList registers the same objects, so they move with the model.
        self._task_scores = [TaskScores(t) for t in self.tasks]
        self.task_scores = nn.ModuleList(self._task_scores)
        self.eval_tasks: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------------------- model
    def forward(self, x: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        """Each head's output: ``binary`` logits ``(m,)``; ``multilabel`` and ``multiclass``
        logits ``(m, C)``; ``regression`` predictions ``(m, C)``."""
        out = self.net(self.input_norm(x))
        return {
            name: z.squeeze(-1) if self.heads[name].kind == "binary" else z
            for name, z in out.items()
        }

    def _head_targets(self, name: str, y: Tensor) -> tuple[Tensor, Tensor]:
        cols = self._head_columns[name]
        target = y[:, cols]
        return target, present_mask(target, self._head_class_column[name])

    def task_costs(self, outputs: Mapping[str, Tensor], y: Tensor) -> dict[str, Tensor]:
        """``{label column: its cost averaged over the present labels}`` (0 when none is)."""
        costs: dict[str, Tensor] = {}
        for name, head in self.heads.items():
            z = outputs[name]
            z = z.unsqueeze(-1) if head.kind == "binary" else z
            target, present = self._head_targets(name, y)
            losses = head_losses(head.kind, z, target.to(z.dtype), present)
            assert head.columns is not None
            if head.kind == "multiclass":
                costs[head.columns[0]] = losses[0]
            else:
                costs.update(zip(head.columns, losses.unbind(0), strict=True))
        return costs

    def cost(self, logits: Any, y: Tensor) -> Tensor:
        """The multi-task cost ``J = sum_t w_t * J_t`` over the present labels (module docstring).

        Args:
            logits: The output of :meth:`forward`, ``{head: output}``.
            y: Labels ``(m, L)`` with ``-1`` / ``NaN`` for missing ones.
        """
        costs = self.task_costs(logits, y)
        total = torch.zeros((), device=y.device)
        for head in self.heads.values():
            assert head.columns is not None
            for col in head.columns:
                total = total + head.loss_weight * costs[col]
        return total

    def predict_labels(self, logits: Any) -> dict[str, Tensor]:  # type: ignore[override]
        """Each head's prediction: 0/1 (``binary``, ``multilabel``: ``a > 0.5``), the class
        (``multiclass``: ``argmax``) or the value (``regression``)."""
        out = {}
        for name, z in logits.items():
            kind = self.heads[name].kind
            if kind == "regression":
                out[name] = z
            elif kind == "multiclass":
                out[name] = z.argmax(dim=-1)
            else:
                out[name] = (z > 0).long()
        return out

    def predict_proba(self, logits: Any) -> dict[str, Tensor]:  # type: ignore[override]
        """Each head's probabilities: ``sigmoid`` per unit (``binary``, ``multilabel``), a
        ``softmax`` (``multiclass``); ``regression`` heads give their predictions."""
        out = {}
        for name, z in logits.items():
            kind = self.heads[name].kind
            if kind == "regression":
                out[name] = z.float()
            elif kind == "multiclass":
                out[name] = torch.softmax(z.float(), dim=-1)
            else:
                out[name] = torch.sigmoid(z.float())
        return out

    # ------------------------------------------------------------------------- evaluation
    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self._trainer, "datamodule", None)
        names = getattr(datamodule, "label_classes", None)
        if isinstance(names, Mapping):
            self.set_class_names(names)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        outputs = self(x)
        for scores in self._task_scores:
            task = scores.task
            z = outputs[task.head]
            if task.kind in ("multilabel", "regression"):
                z = z[:, task.unit]
            scores.update(z, y[:, task.column])

    def on_test_epoch_end(self) -> None:
        # Scores over the whole split (states summed over batches), never a mean of batches.
        rows: dict[str, dict[str, Any]] = {}
        logged: dict[str, float] = {}
        for scores in self._task_scores:
            row = rows[scores.task.name] = scores.compute()
            scores.reset()
            for k, v in row.items():
                if k not in ("kind", "head", "n") and isinstance(v, float):
                    logged[f"{self.eval_split}/{scores.task.name}/{k}"] = v
        self.eval_tasks = rows
        if logged:
            self.log_dict(logged)

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:  # type: ignore[override]
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.predict_proba(self(x))

    def set_class_names(self, class_names: Mapping[str, Sequence[str]]) -> None:
        """Name the classes of each task (``{label column: names}``) for the per-class scores."""
        for task in self.tasks:
            names = list(class_names.get(task.name) or [])
            if task.kind != "regression" and len(names) == task.num_classes:
                task.class_names = names
