"""Error analysis on the dev set, and the check that dev and test share one distribution.

The course's error analysis: look at the dev examples the model gets wrong, count what kinds of
mistake dominate, and work on the biggest category first. Here: the most-confused class pairs
(from the confusion matrix) and the dev examples with the highest loss (the most confidently
wrong). The course also requires dev and test to come from one distribution; the check is
:func:`~mlstrategy.evaluation.distributions.compare_distributions`.

:func:`analyze_errors` does both for every kind of run, reading the data through one
interface (:class:`~mlstrategy.data.protocol.EvaluationData`): in-memory arrays, a folder of
image files (the highest-loss examples are listed by file; dev and test are compared on each
image's colour statistics) and a multi-task model (per classification task, on its present
labels; dev and test compared on the features and on each task's labels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mlstrategy.data.protocol import EvaluationData, evaluation_data
from mlstrategy.evaluation.distributions import (
    DOMAIN_MAX_ROWS,
    compare_distributions,
    compare_task_distributions,
)
from mlstrategy.evaluation.scoring import is_multitask
from mlstrategy.metrics.masking import present_mask


def most_confused(
    confusion_matrix: Sequence[Sequence[int]], class_names: Sequence[str], k: int = 5
) -> list[dict[str, Any]]:
    """The ``k`` largest off-diagonal cells: which true class is taken for which, how often.

    Args:
        confusion_matrix: Counts, ``[true][predicted]``.
        class_names: One name per class.
        k: How many pairs to return.

    Returns:
        ``[{"true", "predicted", "count", "share"}]``, largest first; ``share`` is the fraction
        of all errors; pairs that never happen are left out.

    Example:
        >>> pairs = most_confused([[5, 3, 0], [1, 4, 0], [0, 0, 2]], ["a", "b", "c"], k=2)
        >>> [(p["true"], p["predicted"], p["count"], p["share"]) for p in pairs]
        [('a', 'b', 3, 0.75), ('b', 'a', 1, 0.25)]
    """
    cm = np.asarray(confusion_matrix, dtype=np.int64)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    total = int(off.sum())
    pairs = [(int(off[i, j]), i, j) for i in range(len(cm)) for j in range(len(cm)) if off[i, j]]
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    return [
        {
            "true": class_names[i],
            "predicted": class_names[j],
            "count": count,
            "share": round(count / total, 4),
        }
        for count, i, j in pairs[:k]
    ]


@torch.no_grad()
def example_losses(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-example cross-entropy ``-log a_y``, predicted labels and ``p(true class)``.

    The model is run in eval mode (dropout off) and must offer ``forward`` (logits),
    ``predict_proba`` and ``predict_labels`` as :class:`~mlstrategy.models.ClassifierModule`
    does; its training mode is restored afterwards.

    Args:
        model: A trained classifier.
        x: Examples, on any device (moved to the model's).
        y: True labels.
        batch_size: Examples per forward pass.

    Returns:
        ``(loss, predicted, p_true)``, each of shape ``(m,)``, on the CPU.
    """
    classifier: Any = model  # duck-typed: forward, predict_proba, predict_labels
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    losses, preds, p_true = [], [], []
    try:
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(device)
            yb = y[start : start + batch_size].to(device)
            logits = classifier(xb)
            proba = classifier.predict_proba(logits)
            p = proba.gather(1, yb[:, None]).squeeze(1)
            losses.append(-torch.log(p.clamp_min(1e-12)).cpu())
            preds.append(classifier.predict_labels(logits).cpu())
            p_true.append(p.cpu())
    finally:
        model.train(was_training)
    return torch.cat(losses), torch.cat(preds), torch.cat(p_true)


def highest_loss(
    losses: torch.Tensor,
    preds: torch.Tensor,
    p_true: torch.Tensor,
    y: torch.Tensor,
    class_names: Sequence[str],
    k: int = 10,
) -> list[dict[str, Any]]:
    """The ``k`` examples with the highest loss, worst first.

    Args:
        losses: Per-example loss, from :func:`example_losses`.
        preds: Predicted labels.
        p_true: Probability given to the true class.
        y: True labels.
        class_names: One name per class.
        k: How many examples to return.

    Returns:
        ``[{"index", "true", "predicted", "p_true", "loss"}]``; ``index`` is the position in
        the split.

    Example:
        >>> import torch
        >>> rows = highest_loss(torch.tensor([0.1, 2.3, 0.7]), torch.tensor([0, 0, 1]),
        ...                     torch.tensor([0.9, 0.1, 0.5]), torch.tensor([0, 1, 1]),
        ...                     ["cat", "dog"], k=1)
        >>> rows
        [{'index': 1, 'true': 'dog', 'predicted': 'cat', 'p_true': 0.1, 'loss': 2.3}]
    """
    order = torch.argsort(losses, descending=True, stable=True)[:k]
    return [
        {
            "index": int(i),
            "true": class_names[int(y[i])],
            "predicted": class_names[int(preds[i])],
            "p_true": round(float(p_true[i]), 4),
            "loss": round(float(losses[i]), 4),
        }
        for i in order
    ]


def analyze_errors(
    model: torch.nn.Module, datamodule: Any, splits: Mapping[str, Mapping[str, Any]], k: int = 10
) -> dict[str, Any]:
    """Error analysis on the dev split and the dev/test same-distribution check, for any run.

    The data is read through :class:`~mlstrategy.data.protocol.EvaluationData`, so in-memory
    arrays (:class:`~mlstrategy.data.ArrayDataModule`) and folders of image files
    (:class:`~mlstrategy.data.ImageFolderDataModule`) are analysed alike, split by split in
    evaluation batches (never augmented):

    - A single-task classifier: the most-confused pairs and the highest-loss dev examples
      (for image files each also names its ``file``). Dev and test are compared on what the
      data module offers (``distribution_features``: the raw features of in-memory data, each
      image's per-channel mean and standard deviation for image files); train is told from
      dev on at most :data:`~mlstrategy.evaluation.distributions.DOMAIN_MAX_ROWS` train
      examples of a folder (every one in memory).
    - A multi-task model (it lists its ``tasks``): per classification task, its most-confused
      pairs and its highest-loss dev examples among those with a label for it (``index`` is
      the position in the dev split); dev and test are compared on the features and on each
      task's present labels.

    Args:
        model: The trained model (the weights that were scored).
        datamodule: Its data module.
        splits: The scored splits, from :func:`~mlstrategy.evaluation.scoring.evaluate_splits`.
        k: How many highest-loss dev examples to list.

    Returns:
        ``{"most_confused": [...], "highest_loss": [...], "same_distribution": {...}}``, for
        image or signal data ``"highest_loss_x"`` too (the examples as the model saw them, for
        the figure); for a multi-task model ``{"tasks": {task: {"most_confused",
        "highest_loss"}}, "same_distribution": {...}}``. ``{}`` where there is no dev split to
        analyse, or a data module that cannot be read split by split.
    """
    data = evaluation_data(datamodule)
    if data is None or "dev" not in data.split_names:
        return {}
    if is_multitask(model):
        return _analyze_tasks(model, datamodule, data, splits, k)
    if data.split_labels("dev").dim() != 1:
        return {}  # one label column per task: not a single-task classifier's labels
    cm = splits.get("dev", {}).get("confusion_matrix")
    losses, preds, p_true, y_dev, features = _dev_pass(model, data)
    names = _class_names(data, len(cm) if cm else None)
    worst = highest_loss(losses, preds, p_true, y_dev, names, k=k)
    files = data.example_files("dev")
    if files is not None:
        for w in worst:
            w["file"] = str(files[w["index"]])
    out: dict[str, Any] = {
        "most_confused": most_confused(cm, names) if cm else [],
        "highest_loss": worst,
    }
    shown = data.split_examples("dev", [w["index"] for w in worst])
    if shown.dim() in (3, 4):
        out["highest_loss_x"] = shown.numpy()
    if "test" in data.split_names:
        out["same_distribution"] = compare_distributions(
            (features, y_dev.numpy()),
            (_features(data, "test"), data.split_labels("test").numpy()),
            len(names),
            feature_names=data.distribution_feature_names,
            train_x=_train_sample(data) if "train" in data.split_names else None,
        )
    return out


def _class_names(data: EvaluationData, num_classes: int | None) -> list[str]:
    """The data's class names; ``0..K-1`` where it has none (or not ``num_classes`` of them)."""
    names = list(data.class_names or [])
    if num_classes is None:
        if names:
            return names
        num_classes = 1 + max(int(data.split_labels(s).max()) for s in data.split_names)
    return names if len(names) == num_classes else [str(c) for c in range(num_classes)]


def _dev_pass(model: torch.nn.Module, data: EvaluationData) -> tuple[Any, ...]:
    """One pass over the dev batches: losses, predictions, ``p_true``, labels (tensors) and
    the distribution features (an array), each in dev order."""
    parts: list[tuple[torch.Tensor, ...]] = []
    features: list[np.ndarray] = []
    for x, y in data.eval_dataloader("dev"):  # decoded and resized as for scoring
        parts.append((*example_losses(model, x, y), y.cpu()))
        features.append(data.distribution_features(x.cpu()))
    losses, preds, p_true, y_dev = (torch.cat(p) for p in zip(*parts, strict=True))
    return losses, preds, p_true, y_dev, np.concatenate(features)


def _features(data: EvaluationData, split: str) -> np.ndarray:
    """The distribution features of every example of ``split``, in order."""
    batches = data.eval_dataloader(split)
    return np.concatenate([data.distribution_features(x.cpu()) for x, _ in batches])


def _train_sample(data: EvaluationData, seed: int = 0) -> np.ndarray:
    """The distribution features of the train split: every example in memory (the domain
    classifier draws its own rows), a seeded sample of as many as it uses of image files."""
    n = data.split_size("train")
    if data.example_files("train") is None or n <= DOMAIN_MAX_ROWS:
        return _features(data, "train")
    rows = np.sort(np.random.default_rng(seed).choice(n, DOMAIN_MAX_ROWS, replace=False))
    return data.distribution_features(data.split_examples("train", rows.tolist()))


@torch.no_grad()
def _task_outputs(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 4096) -> Any:
    """``{task: outputs}`` of a multi-task model over ``x``, in eval mode, on the CPU."""
    net: Any = model  # duck-typed: forward, task_outputs
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    parts: list[dict[str, torch.Tensor]] = []
    try:
        for start in range(0, len(x), batch_size):
            out = net.task_outputs(net(x[start : start + batch_size].to(device)))
            parts.append({t: z.float().cpu() for t, z in out.items()})
    finally:
        model.train(was_training)
    return {t: torch.cat([p[t] for p in parts]) for t in parts[0]} if parts else {}


def _analyze_tasks(
    model: torch.nn.Module,
    datamodule: Any,
    data: EvaluationData,
    splits: Mapping[str, Mapping[str, Any]],
    k: int,
) -> dict[str, Any]:
    y_dev = data.split_labels("dev")
    outputs, x_dev = _task_pass(model, data)
    given = dict(getattr(datamodule, "label_classes", None) or {})
    dev_rows = splits.get("dev", {}).get("tasks", {})
    y_test = data.split_labels("test") if "test" in data.split_names else None
    tasks: dict[str, Any] = {}
    labels: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    for task in getattr(model, "tasks", []):
        if task.kind == "regression":
            continue
        names = list(given.get(task.name) or [])
        if len(names) != task.num_classes:
            names = [str(c) for c in range(task.num_classes)]
        target = y_dev[:, task.column]
        present = present_mask(target, task.class_column)
        if y_test is not None:
            test = y_test[:, task.column]
            test = test[present_mask(test, task.class_column)]
            labels[task.name] = (_ints(target[present]), _ints(test), task.num_classes)
        if not present.any():
            continue
        z, t = outputs[task.name][present], target[present].long()
        if task.kind == "multiclass":
            losses, preds = F.cross_entropy(z, t, reduction="none"), z.argmax(dim=-1)
        else:
            losses = F.binary_cross_entropy_with_logits(z, t.float(), reduction="none")
            preds = (z > 0).long()
        worst = highest_loss(losses, preds, torch.exp(-losses), t, names, k=k)
        rows = present.nonzero().squeeze(1)
        for w in worst:
            w["index"] = int(rows[w["index"]])  # the position in the dev split
        cm = dev_rows.get(task.name, {}).get("confusion_matrix")
        tasks[task.name] = {
            "most_confused": most_confused(cm, names) if cm else [],
            "highest_loss": worst,
        }
    out: dict[str, Any] = {"tasks": tasks}
    if y_test is not None:
        out["same_distribution"] = compare_task_distributions(
            x_dev, _features(data, "test"), labels
        )
    return out


def _task_pass(model: torch.nn.Module, data: EvaluationData) -> tuple[dict[str, Any], Any]:
    """``{task: outputs}`` over the dev batches, and their distribution features."""
    parts = [
        (_task_outputs(model, x), data.distribution_features(x.cpu()))
        for x, _ in data.eval_dataloader("dev")
    ]
    outputs = {t: torch.cat([p[0][t] for p in parts]) for t in parts[0][0]} if parts else {}
    return outputs, np.concatenate([p[1] for p in parts])


def _ints(y: torch.Tensor) -> np.ndarray:
    return y.long().numpy()
