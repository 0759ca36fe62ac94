"""Score a trained model on every split, in eval mode, over whole splits.

One loop serves every model. :func:`evaluate_splits` runs ``trainer.test`` on each split with a
:class:`SplitScorer` among the trainer's callbacks; the model's ``test_step`` returns what the
scorer needs, and the scorer owns the metrics (from :mod:`mlstrategy.metrics`) and computes
them once over the whole split.

Single-task classifiers get per-split error, accuracy, precision, recall, F1 (multi-class:
micro, macro and weighted too), loss, per-class scores and the confusion matrix. Multi-task
models are scored per task, each on the examples whose label for it is present, so a missing
label is neither right nor wrong; each split's row keeps the usual keys, averaged over the
classification tasks (each task counts the same; ``loss`` is the weighted multi-task cost; None
where no classification task has labels), and adds ``"tasks": {task: row}``. Single-task
regressors get per-split MSE, RMSE, MAE, R^2 and loss, and ``"standard_errors"``: each
score's bootstrap standard error (:func:`~mlstrategy.evaluation.sampling.
bootstrap_standard_errors`).

Single-task classifiers also get ``weighted_error`` (:mod:`mlstrategy.metrics.weighted`: the
costs of ``evaluation.class_costs`` and the data's example weights, 0-1 costs and weight 1
when not given) with its standard error in ``"standard_errors"``, and, when the data has a
group column, ``error_group_mean`` and ``"groups"`` (each group's ``n`` and ``error``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from mlstrategy.evaluation.sampling import bootstrap_standard_errors
from mlstrategy.metrics.classification import ClassificationScores, per_class_table
from mlstrategy.metrics.costs import ClassCosts, cost_matrix
from mlstrategy.metrics.regression import RegressionScores
from mlstrategy.metrics.tasks import TaskScores, summarize_tasks
from mlstrategy.metrics.weighted import WeightedConfusion, weighted_scores


class ScoredTask(Protocol):
    """What the scorer reads of each task of a multi-task model (its ``tasks``)."""

    name: str
    head: str
    kind: str
    num_classes: int
    class_column: bool
    loss_weight: float


def is_multitask(model: Any) -> bool:
    """True for a model whose evaluation is per task (it lists its ``tasks``, as a
    ``MultiTaskNet`` does).

    Example:
        >>> is_multitask(torch.nn.Linear(2, 1))
        False
    """
    return isinstance(getattr(model, "tasks", None), list)


def is_regressor(model: Any) -> bool:
    """True for a single-task regressor (a ``RegressorModule``: it predicts a number).

    Example:
        >>> is_regressor(torch.nn.Linear(2, 1))
        False
    """
    return getattr(model, "regression", False) is True


class SplitScorer(Callback):
    """Scores one split from the model's ``test_step`` outputs, once over the whole split.

    A single-task classifier's ``test_step`` returns ``{"cost", "preds", "targets"}`` (the
    batch's mean cost, predicted and true labels); a multi-task model's returns
    ``{"outputs": {task: outputs}, "targets": {task: labels}}`` with missing labels included.
    The metrics live here, on the model's device, summed over batches (and devices); at the
    end of the split the scalars are logged as ``{split}/{metric}`` (multi-task:
    ``{split}/{task}/{metric}``) and kept in :attr:`summary` and :attr:`details`.

    Args:
        split: The split's name, the prefix of the logged scalars.
        class_names: One name per class (single task), or ``{label column: names}``
            (multi-task); default: the trainer's data module's ``class_names`` or
            ``label_classes``.
        class_costs: A single-task classifier's ``evaluation.class_costs`` (see
            :func:`~mlstrategy.metrics.costs.cost_matrix`); None: every mistake costs 1.

    Attributes:
        summary: The split's scalars: ``error``, ``accuracy``, ... and ``loss`` (multi-task:
            the classification scores are None in a split where no classification task has
            labels, as in a run of regression tasks only).
        details: ``per_class`` and ``confusion_matrix`` (single task) or ``tasks`` (one row
            per task).
    """

    def __init__(
        self,
        split: str = "test",
        class_names: Sequence[str] | Mapping[str, Any] | None = None,
        class_costs: ClassCosts | None = None,
    ) -> None:
        super().__init__()
        self.split = split
        self.class_names = class_names
        self.class_costs = class_costs
        self._weighted: _WeightedSplit | None = None
        self.summary: dict[str, float | None] = {}
        self.details: dict[str, Any] = {}
        self._scores: ClassificationScores | None = None  # single task
        self._task_scores: dict[str, TaskScores] = {}  # multi-task: one per task
        self._values: RegressionScores | None = None  # single-task regressor
        self._tasks: list[ScoredTask] = []
        self._names: Sequence[str] | Mapping[str, Any] = []

    @property
    def row(self) -> dict[str, Any]:
        """The split's row: :attr:`summary` followed by :attr:`details`."""
        return {**self.summary, **self.details}

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        model: Any = pl_module
        given = self.class_names
        datamodule = getattr(trainer, "datamodule", None)
        self._names = given if given is not None else class_names(datamodule, model)
        self._values = None
        if is_regressor(model):
            self._scores, self._values = None, RegressionScores().to(pl_module.device)
        elif is_multitask(model):
            self._tasks, self._scores = list(model.tasks), None
            self._task_scores = {
                t.name: TaskScores(t.kind, t.num_classes, t.class_column).to(pl_module.device)
                for t in self._tasks
            }
        else:
            self._scores = ClassificationScores(int(model.num_classes)).to(pl_module.device)
            self._weighted = _WeightedSplit(trainer, self.split, int(model.num_classes))

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._scores is not None:
            self._scores.update(outputs["cost"], outputs["preds"], outputs["targets"])
            if self._weighted is not None:
                self._weighted.update(outputs["preds"], outputs["targets"])
            return
        if self._values is not None:
            self._values.update(outputs["cost"], outputs["preds"], outputs["targets"])
            return
        for name, scores in self._task_scores.items():
            scores.update(outputs["outputs"][name], outputs["targets"][name])

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Computed once over the whole split (states summed over batches and devices), never
        # as a mean of per-batch scores.
        if self._scores is not None:
            scalars, per_class = self._scores.compute()
            names = list(self._names or []) or None
            self.summary = {k: float(v) for k, v in scalars.items()}
            self.details = {
                "per_class": per_class_table(per_class, names),
                "confusion_matrix": per_class["confusion_matrix"].tolist(),
            }
            pl_module.log_dict({f"{self.split}/{k}": v for k, v in scalars.items()})
            if self._weighted is not None:
                weighted, details = self._weighted.compute(self.class_costs)
                self.summary.update(weighted)
                self.details.update(details)
                pl_module.log_dict({f"{self.split}/{k}": v for k, v in weighted.items()})
            return
        if self._values is not None:
            self._score_values(pl_module)
            return
        tasks = self._task_rows()
        self.summary = summarize_tasks(tasks)
        self.details = {"tasks": tasks}
        logged = {
            f"{self.split}/{name}/{k}": v
            for name, row in tasks.items()
            for k, v in row.items()
            if k not in ("kind", "head", "n", "loss_weight") and isinstance(v, float)
        }
        if logged:
            pl_module.log_dict(logged)

    def _score_values(self, pl_module: L.LightningModule) -> None:
        """A regressor's split: MSE, RMSE, MAE, R^2, loss, and their bootstrap standard
        errors (the predictions are resampled with replacement, 1,000 times)."""
        assert self._values is not None
        scalars, (preds, targets) = self._values.compute()
        self.summary = {k: float(v) for k, v in scalars.items()}
        errors = bootstrap_standard_errors(preds.numpy(), targets.numpy())
        self.details = {"standard_errors": errors}
        pl_module.log_dict({f"{self.split}/{k}": v for k, v in scalars.items()})

    def _task_rows(self) -> dict[str, dict[str, Any]]:
        given = self._names if isinstance(self._names, Mapping) else {}
        rows: dict[str, dict[str, Any]] = {}
        for task in self._tasks:
            names = list(given.get(task.name) or [])
            fits = task.kind != "regression" and len(names) == task.num_classes
            scores = self._task_scores[task.name].compute(names if fits else None)
            row = {"kind": task.kind, "head": task.head, **scores}
            row["loss_weight"] = float(task.loss_weight)
            rows[task.name] = row
        return rows


def evaluate_splits(
    trainer: L.Trainer,
    model: L.LightningModule,
    datamodule: Any,
    ckpt_path: str | None,
    only: Sequence[str] | None = None,
    class_costs: ClassCosts | None = None,
) -> dict[str, dict[str, Any]]:
    """Score ``model`` on every split of ``datamodule``, in eval mode, over whole splits.

    The first split scored (test, when the data module has one) goes through
    ``trainer.test(ckpt_path=...)``, which loads the checkpoint's weights; the other splits
    are then scored with those same weights. A data module without a test split (a tune's
    trial withholds it) is scored on the rest.
    Train error is therefore measured like the others (dropout off, final weights), never as a
    running average of training batches. Each split is scored by a :class:`SplitScorer`
    added to the trainer's callbacks for that call, so Lightning's devices and strategies apply.

    Args:
        trainer: The trainer that fit the model.
        model: A single-task classifier or a multi-task model.
        datamodule: Its data (``split_names``, ``eval_dataloader(split)``).
        ckpt_path: The checkpoint to score (the best one), or None for the model as it is.
        only: Score these splits alone (``["test"]``: the chosen trial of a tune), in the
            data module's order; default: every split.
        class_costs: ``evaluation.class_costs`` for a single-task classifier's
            ``weighted_error``; None: 0-1 costs.

    Raises:
        ValueError: ``only`` names a split the data module does not have, or ``class_costs``
            do not fit the model's number of classes.

    Returns:
        Single task: ``{split: {"error", "accuracy", "precision", "recall", "f1", ..., "loss",
        "n", "per_class", "confusion_matrix"}}``. Multi-task: ``{split: {summary of
        :func:`~mlstrategy.metrics.tasks.summarize_tasks`, "n": examples, "tasks": {task:
        row}}}``.
    """
    splits = list(datamodule.split_names)
    missing = [s for s in only or () if s not in splits]
    if missing:
        raise ValueError(
            f"No {missing[0]!r} split to score; this data module has {splits}. Score one of "
            "those, or give the data module that split."
        )
    splits = [s for s in splits if only is None or s in only]
    order = sorted(splits, key=lambda s: s != "test")  # test first where there is one
    names = class_names(datamodule, model)
    if class_costs is not None and not (is_regressor(model) or is_multitask(model)):
        cost_matrix(class_costs, int(cast(Any, model).num_classes))  # refused before scoring
    results: dict[str, dict[str, Any]] = {}
    for i, split in enumerate(order):
        loader = datamodule.eval_dataloader(split)
        scorer = SplitScorer(split, names, class_costs)
        cast(Any, trainer).callbacks.append(scorer)  # the list set by Trainer.__init__
        try:
            trainer.test(
                model, dataloaders=loader, ckpt_path=ckpt_path if i == 0 else None, verbose=False
            )
        finally:
            # Read again: a model's configure_callbacks makes trainer.test put a new list in
            # its place, and a scorer left there would score the next split as its own.
            callbacks: list[Callback] = cast(Any, trainer).callbacks
            if scorer in callbacks:
                callbacks.remove(scorer)
        results[split] = {**scorer.summary, "n": _split_size(loader), **scorer.details}
    return {s: results[s] for s in splits}


class _WeightedSplit:
    """One split's :class:`~mlstrategy.metrics.weighted.WeightedConfusion`, fed with each
    batch's rows of the data module's ``example_columns`` (weights and group codes).

    Evaluation batches come in the split's order, unshuffled; under a distributed strategy
    this process holds every ``world_size``-th example from its ``rank``, so the ``p``-th
    example it scores is the split's row ``rank + world_size * p``. Columns whose length is
    not the split's (a learning curve's train subset) are not used: weight 1, no groups.
    """

    def __init__(self, trainer: Any, split: str, num_classes: int) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        columns = dict((getattr(datamodule, "example_columns", None) or {}).get(split) or {})
        prepare = getattr(datamodule, "prepare", None)
        splits = prepare() if columns and callable(prepare) else {}
        size = len(splits[split][1]) if split in splits else None
        columns = {k: v for k, v in columns.items() if size is not None and len(v) == size}
        device = trainer.strategy.root_device
        self.weights = _on(columns.get("weight"), device, torch.float64)
        self.groups = _on(columns.get("group"), device, torch.long)
        names = list(getattr(datamodule, "group_names", None) or []) if "group" in columns else []
        self.group_names = names
        self.sums = WeightedConfusion(num_classes, len(names)).to(device)
        self.rank, self.world = int(trainer.global_rank), int(trainer.world_size)
        self.seen = 0

    def update(self, preds: torch.Tensor, targets: torch.Tensor) -> None:
        n = len(preds)
        rows = None
        if self.weights is not None or self.groups is not None:
            rows = torch.arange(self.seen, self.seen + n, device=preds.device)
            rows = self.rank + self.world * rows
        self.seen += n
        ones = torch.ones(n, dtype=torch.float64, device=preds.device)
        w = self.weights[rows] if self.weights is not None and rows is not None else ones
        g = self.groups[rows] if self.groups is not None and rows is not None else None
        self.sums.update(preds, targets, w, g)

    def compute(self, class_costs: ClassCosts | None) -> tuple[dict[str, float], dict[str, Any]]:
        costs = cost_matrix(class_costs, self.sums.num_classes)
        return weighted_scores(self.sums.compute(), costs, self.group_names)


def _on(values: Any, device: torch.device, dtype: torch.dtype) -> torch.Tensor | None:
    return None if values is None else torch.as_tensor(values).to(device=device, dtype=dtype)


def class_names(datamodule: Any, model: Any) -> list[str] | dict[str, list[str]]:
    """The data's class names as the scorer takes them: ``{label column: names}`` for a
    multi-task model (the data module's ``label_classes``), else one name per class (its
    ``class_names``); empty when the data module names none.

    Example:
        >>> class Data:
        ...     class_names = ["cat", "dog"]
        >>> class_names(Data(), torch.nn.Linear(2, 1))
        ['cat', 'dog']
    """
    if is_multitask(model):
        return dict(getattr(datamodule, "label_classes", None) or {})
    return list(getattr(datamodule, "class_names", None) or [])


def _split_size(loader: Any) -> int:
    """Examples in a split: in-memory batches hold it as ``x``, a DataLoader as its dataset."""
    return len(loader.x) if hasattr(loader, "x") else len(loader.dataset)


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Total and trainable parameter counts.

    Example:
        >>> count_parameters(torch.nn.Linear(30, 1))
        {'params': 31, 'trainable_params': 31}
    """
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"params": total, "trainable_params": trainable}
