"""The heads of a multi-task net: what the recipe declares, the tasks they predict, their cost.

A head reads one or more label columns; each column is one task. The cost of a head is each
task's cost averaged over its present labels (:func:`head_losses`); a missing label (``-1``
for a class label, ``NaN`` for a real-valued one) adds nothing to the cost or its gradient.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from mlstrategy.metrics.masking import masked_mean

HeadKind = Literal["binary", "multilabel", "multiclass", "regression"]
HEAD_KINDS: tuple[str, ...] = ("binary", "multilabel", "multiclass", "regression")


@dataclass
class Head:
    """One output head of a :class:`~mlstrategy.models.MultiTaskNet`, declared in the recipe
    under its name.

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
        loss_weight: The head's loss weight: this task's weight in the multi-task cost.
    """

    name: str
    head: str
    kind: str
    column: int
    unit: int
    num_classes: int
    class_column: bool
    loss_weight: float = 1.0


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

    Example:
        >>> z, y = torch.tensor([[0.0], [5.0]]), torch.tensor([[1.0], [-1.0]])
        >>> head_losses("binary", z, y, y >= 0)  # log 2: the second label is missing
        tensor([0.6931])
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


def check_heads(
    heads: Mapping[str, Head | Mapping[str, Any]], data_classes: Mapping[str, int] | None
) -> tuple[dict[str, Head], list[str], dict[str, int]]:
    """Validate the recipe's heads against the data's label columns.

    Args:
        heads: ``{name: head}`` as the recipe gives them.
        data_classes: ``{label column: number of classes}`` (0 for real values) in the order
            of the label matrix; None = the heads' columns, in order, are the label matrix.

    Returns:
        ``(heads, label_names, classes)``: the heads as :class:`Head` with ``columns`` and
        (multiclass) ``num_classes`` filled in, the label columns in the order of ``y``, and
        ``{column: number of classes}`` (0 for real-valued columns).

    Raises:
        ValueError: naming the head, the value and what is allowed.
    """
    if not heads:
        raise ValueError(
            "heads={} declares no head. Give one per task, e.g. heads: {car: {kind: binary}, "
            "pedestrian: {kind: binary}}, named after the data's label columns."
        )
    out = {name: _check_head(name, given) for name, given in heads.items()}
    readers: dict[str, str] = {}
    for name, head in out.items():
        for col in head.columns or []:
            if col in readers:
                raise ValueError(
                    f"Label column {col!r} is read by two heads, heads.{readers[col]} and "
                    f"heads.{name}; give each column to one head."
                )
            readers[col] = name
    if data_classes is None:  # no data: the heads' columns, in order, are the label matrix
        return out, list(readers), _classes_from_heads(out)
    classes = {k: int(v) for k, v in data_classes.items()}
    for name, head in out.items():
        _check_against_data(name, head, classes)
    return out, list(classes), classes


def build_tasks(
    heads: Mapping[str, Head], label_names: Sequence[str], classes: Mapping[str, int]
) -> list[Task]:
    """One :class:`Task` per label column the heads read, in the heads' order.

    Args:
        heads: Checked heads (:func:`check_heads`).
        label_names: The label columns in the order of ``y``.
        classes: ``{column: number of classes}`` (0 for real values).
    """
    tasks: list[Task] = []
    for name, h in heads.items():
        for unit, col in enumerate(h.columns or []):
            tasks.append(
                Task(
                    name=col,
                    head=name,
                    kind=h.kind,
                    column=list(label_names).index(col),
                    unit=unit,
                    num_classes=0 if h.kind == "regression" else (h.num_classes or 2),
                    class_column=classes[col] > 0,
                    loss_weight=float(h.loss_weight),
                )
            )
    return tasks


def _check_head(name: str, given: Head | Mapping[str, Any]) -> Head:
    """One head on its own: its name, kind, loss weight, columns and class count."""
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
                f"{where}.num_classes={head.num_classes}: only a multiclass head takes num_classes."
            )
        if head.num_classes < 2:
            raise ValueError(f"{where}.num_classes={head.num_classes} must be >= 2.")
    return head


def _classes_from_heads(heads: Mapping[str, Head]) -> dict[str, int]:
    """``{column: number of classes}`` from the heads alone (no data to take it from)."""
    classes: dict[str, int] = {}
    for name, head in heads.items():
        for col in head.columns or []:
            if head.kind == "multiclass":
                if head.num_classes is None:
                    raise ValueError(
                        f"heads.{name}.num_classes is needed without data to take it from."
                    )
                classes[col] = head.num_classes
            else:
                classes[col] = 2 if head.kind in ("binary", "multilabel") else 0
    return classes


def _check_against_data(name: str, head: Head, classes: Mapping[str, int]) -> None:
    """The head's columns exist in the data and hold what its kind reads; fills in a
    multiclass head's ``num_classes``."""
    for col in head.columns or []:
        if col not in classes:
            columns = "columns" if head.columns != [name] else "columns (default: its name)"
            raise ValueError(
                f"heads.{name}.{columns}: the data has no label column {col!r}; its label "
                f"columns are {list(classes)}. Name the head after a label column or set "
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
