"""Training and testing on different distributions: two sources in one data module.

The course's setup (Structuring ML Projects, week 2; Machine Learning Yearning ch. 36-42): 200,000
web images you have plenty of (the *source*), 10,000 from the mobile app the system must work on
(the *target*). Dev and test come from the target only, since they aim the team at the data it
will see; some target examples may join training; a train-dev split carved from the training
mix shares train's distribution, so ``dev - train-dev`` measures data mismatch, not variance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mlstrategy.data.augment import per_example
from mlstrategy.data.batches import InMemoryBatches
from mlstrategy.data.datamodule import ArrayDataModule, check_arrays
from mlstrategy.data.sources import Arrays, ArraySource
from mlstrategy.data.splits import stratified_split
from mlstrategy.data.synthesis import pool_report

SOURCE, TARGET = "source", "target"
TRAINING = ("train", "train_dev")  # the splits of the training mix


@dataclass
class _Pool:
    """One source's examples (its own test split folded in): all of them are material."""

    x: np.ndarray
    y: np.ndarray


def _pooled(arrays: Arrays) -> _Pool:
    if arrays.x_test is None or arrays.y_test is None:
        return _Pool(arrays.x, arrays.y)
    return _Pool(
        np.concatenate([arrays.x, arrays.x_test]), np.concatenate([arrays.y, arrays.y_test])
    )


def _names(arrays: Arrays, y: np.ndarray) -> list[str]:
    return list(arrays.class_names) or [str(k) for k in range(int(y.max()) + 1)]


class MismatchDataModule(ArrayDataModule):
    """Train on a plentiful ``source`` plus some ``target`` examples; dev and test from the target.

    Splits, all seeded and stratified by label:

    - ``dev`` and ``test``: ``dev_fraction`` and ``test_fraction`` of the target's examples;
      nothing else, so both come from the distribution the system must work on.
    - ``train`` and ``train_dev``: the training mix, every source example plus
      ``target_in_train`` of the target's other examples; ``train_dev_fraction`` of the mix
      (stratified by label and by source) is held out as train-dev, same distribution as train.

    Normalization statistics come from the train split only (the mix, as the model sees it).
    :attr:`origin` records which source each example of each split came from, and
    :attr:`rows` its row in that source's arrays (its own test split, if any, appended).

    Synthesis (the course's remedy for data mismatch): ``synthesis`` transforms (see
    :mod:`mlstrategy.data.synthesis`) are fit on the target's examples outside dev and test
    (their inputs only, never dev or test) and applied to the *source* examples of each
    training batch with probability ``synthesis_probability``, a fresh draw per example and
    batch (a module that does not draw per example itself, e.g. a torchvision transform, is
    called once per example: see :mod:`mlstrategy.data.augment`), before ``augment``; target
    examples are left as they are. Train and train-dev are then scored on
    one fixed, seeded synthesized copy, so train-dev keeps sharing train's distribution.

    Args:
        source: The data you have plenty of, e.g. clean scans.
        target: The distribution the system must work on, e.g. phone pictures; the same classes.
        target_in_train: Target examples added to training: a count (an integer), or a
            fraction of all target examples (a float in [0, 1)); 0 = none. At most what dev and
            test leave.
        dev_fraction: Fraction of the target in the dev split, in (0, 1).
        test_fraction: Fraction of the target in the test split, in (0, 1).
        train_dev_fraction: Fraction of the training mix held out as train-dev, in [0, 1);
            0 = none (the diagnosis then cannot tell variance from data mismatch).
        synthesis: Transforms that make source examples look like the target, e.g.
            ``[{class_path: mlstrategy.data.TargetNoise, init_args: {clips: 1000}}]``.
        synthesis_probability: Chance that a source example of a batch is synthesized.
        batch_size: Mini-batch size; null = the whole train split in one batch.
        eval_batch_size: Batch size for evaluation.
        normalize: Standardize inputs with statistics from the train split.
        seed: Seed of data generation, the splits, the synthesis and the shuffle order.
        augment: Training-only augmentation, as in :class:`ArrayDataModule`.
    """

    def __init__(
        self,
        source: ArraySource,
        target: ArraySource,
        target_in_train: int | float = 0,
        dev_fraction: float = 0.2,
        test_fraction: float = 0.2,
        train_dev_fraction: float = 0.1,
        synthesis: list[nn.Module] | None = None,
        synthesis_probability: float = 1.0,
        batch_size: int | None = 64,
        eval_batch_size: int = 4096,
        normalize: bool = True,
        seed: int = 0,
        augment: list[nn.Module] | None = None,
    ) -> None:
        super().__init__(
            source,
            dev_fraction=dev_fraction,
            test_fraction=test_fraction,
            train_dev_fraction=train_dev_fraction,
            use_source_test_split=False,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            normalize=normalize,
            seed=seed,
            augment=augment,
        )
        check_target_in_train(target_in_train)
        if not 0 < synthesis_probability <= 1:
            raise ValueError(
                f"synthesis_probability={synthesis_probability} must be in (0, 1] (the chance a "
                "source example of a batch is synthesized); leave `synthesis` out for none."
            )
        # Kept as text: checkpoints must load with weights_only=True, which refuses objects.
        self.hparams["target"] = repr(target)
        self.hparams["synthesis"] = repr(synthesis) if synthesis else None
        self.target = target
        self.target_in_train = target_in_train
        self.synthesis = nn.ModuleList(per_example(synthesis)) if synthesis else None
        self.synthesis_probability = synthesis_probability
        self.origin: dict[str, np.ndarray] = {}
        self.rows: dict[str, np.ndarray] = {}
        self._synthesized: dict[str, torch.Tensor] = {}
        self._target_left = 0

    # ----------------------------------------------------------------- loading and splitting
    def _split(self, arrays: Arrays) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Called by :meth:`prepare` with the source's checked arrays."""
        target_arrays = self.target.load(self.seed)
        check_arrays(target_arrays, self.target)
        _check_same_classes(arrays, target_arrays, self.source, self.target)
        src, tgt = _pooled(arrays), _pooled(target_arrays)
        if src.x.shape[1:] != tgt.x.shape[1:]:
            raise ValueError(
                f"The source {self.source!r} has examples of shape {src.x.shape[1:]} but the "
                f"target {self.target!r} {tgt.x.shape[1:]}: one model reads both, so they need "
                "the same shape. Resize or reshape one of them."
            )
        parts = self._target_parts(tgt.y)
        out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for split, (origin, rows) in mismatch_splits(
            src.y, tgt.y, parts, self.train_dev_fraction, self.seed
        ).items():
            self.origin[split], self.rows[split] = origin, rows
            x = take_rows(origin, rows, src.x, tgt.x, np.float32)
            y = take_rows(origin, rows, src.y, tgt.y, np.int64)
            out[split] = (torch.from_numpy(x), torch.from_numpy(y))
        if self.synthesis is not None:
            self._fit_synthesis(torch.from_numpy(tgt.x[parts["left"]]), out)
        return out

    def _target_parts(self, y: np.ndarray) -> dict[str, np.ndarray]:
        parts = split_target(
            y,
            dev_fraction=self.dev_fraction,
            test_fraction=self.test_fraction,
            target_in_train=self.target_in_train,
            seed=self.seed,
            target=repr(self.target),
        )
        self._target_left = len(parts["left"])
        return parts

    def _fit_synthesis(
        self, target_x: torch.Tensor, splits: dict[str, tuple[torch.Tensor, torch.Tensor]]
    ) -> None:
        """Fit the transforms on the target's training-side inputs; one fixed, seeded
        synthesized copy of train and train-dev for scoring and normalization."""
        assert self.synthesis is not None
        for i, transform in enumerate(self.synthesis):
            fit = getattr(transform, "fit", None)
            if callable(fit):
                fit(target_x, self.seed + i)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for split in ("train", "train_dev"):
                if split in splits:
                    x = splits[split][0]
                    keep = torch.from_numpy(self.origin[split] == TARGET)
                    chunks = [
                        self._synthesize(x[s : s + 256], keep[s : s + 256])
                        for s in range(0, len(x), 256)
                    ]
                    self._synthesized[split] = torch.cat(chunks)

    @torch.no_grad()
    def _synthesize(self, x: torch.Tensor, is_target: torch.Tensor) -> torch.Tensor:
        """Synthesized source rows of a batch (each with ``synthesis_probability``); target
        rows as given. ``torch.where``, not a boolean index: no host-device sync."""
        assert self.synthesis is not None
        made = x
        for transform in self.synthesis:
            made = transform(made)
        chosen = ~is_target
        if self.synthesis_probability < 1:
            draw = torch.rand(len(x), device=x.device) < self.synthesis_probability
            chosen = chosen & draw
        mask = chosen.view(-1, *([1] * (x.dim() - 1)))
        return torch.where(mask, made.to(x.dtype), x)

    # ------------------------------------------------------------------ what the splits hold
    def split_origins(self) -> dict[str, dict[str, int]]:
        """Per split, how many examples came from the source and how many from the target."""
        self.prepare()
        return count_origins(self.origin)

    def describe_sources(self) -> dict[str, Any]:
        """What the report says about the two distributions: both sources, each split's
        origins, the target examples used and left, and the synthesis pools."""
        origins = self.split_origins()
        out = describe_origins(repr(self.source), repr(self.target), origins)
        out.update(target_left=self._target_left, synthesis=None)
        if self.synthesis is not None:
            synthesized = origins.get("train", {}).get(SOURCE, 0)
            out["synthesis"] = pool_report(list(self.synthesis), synthesized)
            out["synthesis"]["probability"] = self.synthesis_probability
        return out

    def _normalizer_inputs(self) -> torch.Tensor:
        """The train split (the mix), synthesized as the model sees it when ``synthesis`` is
        set: what :meth:`input_normalizer` fits on."""
        return self._synthesized.get("train", super()._normalizer_inputs())

    # ----------------------------------------------------------------------- Lightning hooks
    def setup(self, stage: str) -> None:
        super().setup(stage)
        device = self._device
        if self.synthesis is not None and getattr(self, "_synth_device", None) != device:
            self._synthesized = {k: v.to(device) for k, v in self._synthesized.items()}
            self.synthesis.to(device)
            self._is_target = torch.from_numpy(self.origin["train"] == TARGET).to(device)
            self._synth_device = device

    def _batches(self, split: str, train: bool = False) -> InMemoryBatches:
        if self.synthesis is None or not (train or split in self._synthesized):
            return super()._batches(split, train)
        kwargs = self._batch_kwargs(train, split)
        x, y = self._on_device[split]
        if not train:
            return InMemoryBatches(self._synthesized[split], y, **kwargs)
        return _SynthesisBatches(x, y, self._is_target, self._synthesize, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "origins": self.split_origins()}


class _SynthesisBatches(InMemoryBatches):
    """Training batches whose source examples are synthesized: each example's origin rides
    along as a second label column (one gather for both), then is dropped."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        is_target: torch.Tensor,
        synthesize: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(x, torch.stack([y, is_target.to(y.dtype)], dim=1), **kwargs)
        self._synthesize_batch = synthesize

    def __iter__(self) -> Any:
        for x, labels in super().__iter__():
            yield self._synthesize_batch(x, labels[:, 1].bool()), labels[:, 0]


def check_target_in_train(value: int | float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"target_in_train={value!r} must be a count (integer) or a fraction.")
    if isinstance(value, float) and not 0 <= value < 1:
        raise ValueError(
            f"target_in_train={value} is a fraction of the target's examples, so it must be in "
            "[0, 1); give a count as an integer, e.g. 500."
        )
    if value < 0:
        raise ValueError(f"target_in_train={value} must be >= 0 (0 = no target in training).")


def split_target(
    y: np.ndarray,
    *,
    dev_fraction: float,
    test_fraction: float,
    target_in_train: int | float,
    seed: int,
    target: str = "target",
) -> dict[str, np.ndarray]:
    """The target's dev and test (seeded, stratified), the ``target_in_train`` of the rest
    that join training ("train"), and all that dev and test leave ("left").

    Raises:
        ValueError: a target too small for dev and test to hold every class, or
            ``target_in_train`` more than dev and test leave.

    Example:
        >>> parts = split_target(np.arange(100) % 2, dev_fraction=0.2, test_fraction=0.2,
        ...                      target_in_train=0.5, seed=0)
        >>> {k: len(v) for k, v in parts.items()}
        {'train': 50, 'dev': 20, 'test': 20, 'left': 60}
    """
    check_target_in_train(target_in_train)
    try:
        index = stratified_split(
            y, dev_fraction=dev_fraction, test_fraction=test_fraction, seed=seed
        )
    except ValueError as err:
        raise ValueError(
            f"The target {target} ({len(y)} examples, fewest in one class: "
            f"{int(np.bincount(y).min())}) is too small for dev and test splits that hold "
            f"every class (dev_fraction={dev_fraction}, test_fraction={test_fraction}): {err} "
            "Dev and test come from the target only; give it more examples of every class, or "
            "larger dev/test fractions."
        ) from None
    left = index["train"]
    count = _count(target_in_train, len(y))
    if count > len(left):
        raise ValueError(
            f"target_in_train={target_in_train} asks for {count} target examples, but the "
            f"target {target} has {len(y)}, of which dev holds {len(index['dev'])} and test "
            f"{len(index['test'])}, leaving {len(left)}. Give at most {len(left)} (a fraction "
            f"of at most {len(left) / len(y):.2f}), or smaller dev/test fractions."
        )
    chosen = _draw(left, y, count, seed)
    return {"train": chosen, "dev": index["dev"], "test": index["test"], "left": left}


def _count(value: int | float, n: int) -> int:
    return round(value * n) if isinstance(value, float) else int(value)


def _check_same_classes(
    source: Arrays, target: Arrays, source_name: ArraySource, target_name: ArraySource
) -> None:
    names, target_names = _names(source, source.y), _names(target, target.y)
    present = set(_pooled(target).y.tolist())
    check_same_classes(names, target_names, present, repr(source_name), repr(target_name))


def check_same_classes(
    names: list[str], target_names: list[str], present: set[int], source: str, target: str
) -> None:
    """The target must have the source's classes, in the same order, and examples of each
    (``present``: the labels the target's examples carry)."""
    if names != target_names:
        only_source = [c for c in names if c not in target_names]
        only_target = [c for c in target_names if c not in names]
        detail = (
            f"only the source has {only_source}, only the target has {only_target}"
            if only_source or only_target
            else "the same names in another order, so a label means another class on each side"
        )
        raise ValueError(
            f"The source {source} has classes {names} but the target {target} has "
            f"{target_names}: {detail}. Both must label the same classes the same way; relabel "
            "the target, or keep only the classes both have."
        )
    missing = [name for k, name in enumerate(names) if k not in present]
    if missing:
        raise ValueError(
            f"The target {target} has no examples of class(es) {missing}, so dev and test "
            "(drawn from the target only) cannot hold every class. Add target examples of them."
        )


def _draw(rows: np.ndarray, y: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` of ``rows``, seeded, stratified by label when it can be."""
    from sklearn.model_selection import train_test_split

    if count == 0:
        return rows[:0]
    if count >= len(rows):
        return np.sort(rows)
    try:
        chosen, _ = train_test_split(rows, train_size=count, stratify=y[rows], random_state=seed)
    except ValueError:  # too few of a class to stratify a small count
        chosen = np.random.default_rng(seed).choice(rows, count, replace=False)
    return np.sort(chosen)


def mismatch_splits(
    source_y: np.ndarray,
    target_y: np.ndarray,
    parts: dict[str, np.ndarray],
    train_dev_fraction: float,
    seed: int,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each split's examples as ``(origin, rows)``: the source each came from and its row there.

    The training mix is every source example, then the target's ``parts["train"]`` (see
    :func:`split_target`); ``train_dev_fraction`` of it is carved as train-dev (see
    :func:`carve_train_dev`); dev and test are the target's ``parts``. Splits in order: train,
    [train_dev], dev, test.
    """
    n = len(source_y)
    rows = np.concatenate([np.arange(n), parts["train"]])
    origin = np.array([SOURCE] * n + [TARGET] * len(parts["train"]))
    index = {"train": np.arange(len(rows))}
    if train_dev_fraction > 0:
        y = np.concatenate([source_y, target_y[parts["train"]]]).astype(np.int64)
        index = carve_train_dev(y, origin, train_dev_fraction, seed)
    out = {split: (origin[i], rows[i]) for split, i in index.items()}
    for split in ("dev", "test"):
        out[split] = (np.array([TARGET] * len(parts[split])), parts[split])
    return out


def take_rows(
    origin: np.ndarray, rows: np.ndarray, source: np.ndarray, target: np.ndarray, dtype: Any
) -> np.ndarray:
    """Row ``rows[i]`` of ``source`` or of ``target``, as ``origin[i]`` says, in order."""
    out = np.empty((len(rows), *source.shape[1:]), dtype)
    is_target = origin == TARGET
    out[~is_target] = source[rows[~is_target]]
    out[is_target] = target[rows[is_target]]
    return out


def count_origins(origin: dict[str, np.ndarray]) -> dict[str, dict[str, int]]:
    """Per split, how many of its examples came from the source and how many from the target.

    Example:
        >>> count_origins({"dev": np.array([TARGET, TARGET])})
        {'dev': {'source': 0, 'target': 2}}
    """
    return {
        split: {name: int((found == name).sum()) for name in (SOURCE, TARGET)}
        for split, found in origin.items()
    }


def describe_origins(
    source: str, target: str, origins: dict[str, dict[str, int]]
) -> dict[str, Any]:
    """What the report says of two distributions: both, each split's origins (see
    :func:`count_origins`), and how many target examples joined the training mix."""
    return {
        "source": source,
        "target": target,
        "splits": origins,
        "target_in_train": sum(o[TARGET] for s, o in origins.items() if s in TRAINING),
    }


def carve_train_dev(
    y: np.ndarray, origin: np.ndarray, fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Train and train-dev from the training mix, stratified by label and source together
    (so train-dev holds the mix's share of target examples), by label alone when a (label,
    source) group is too small for that."""
    key = y * 2 + (origin == TARGET)
    for strata in (key, y):
        try:
            index = stratified_split(strata, dev_fraction=fraction, test_fraction=None, seed=seed)
        except ValueError as err:
            if strata is y:
                raise ValueError(f"Cannot carve train-dev from the training mix: {err}") from None
            continue
        return {"train": index["train"], "train_dev": index["dev"]}
    raise AssertionError("unreachable")
