"""TensorBoard's HParams tab for a run: which columns it shows, and the summaries that say so.

A row is one run: the model class, the optimizer, the learning rate, the mini-batch size, the
seed, and every other hyperparameter the recipe sets (a model argument that differs from its
default, the data's augmentation, the epochs); the metrics are the split scores
(``train/error``, ``dev/error``, ``test/error``, ``dev/f1``, ...), the scalars the scorer
already logged. Internal keys (``_class_path``, ``_instantiator``), the sizes linked from the
data, and the data module's split settings are left out.

TensorBoard ticks the first five hyperparameter columns and the first five metric columns, the
hyperparameters taken in the order of their ``differs`` flag and then their name. The
headline columns (:data:`HEADLINE`) are flagged, so they are the ticked five; the rest are one
click away.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

# Ticked in the HParams tab (TensorBoard shows these five first, by name).
HEADLINE = ("batch_size", "learning_rate", "model", "optimizer", "seed")
# Model arguments that are not hyperparameters: sizes the data links in.
_LINKED = frozenset({"input_shape", "num_classes"})
# The split scores shown as metrics, in this order (the first five are ticked).
_SCORES = ("error", "f1", "rmse", "r2")


def _defaults(cls: type) -> dict[str, Any]:
    """Every ``__init__`` default along the class's bases, the subclass's winning."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        found |= {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    return found


def _value(value: Any) -> bool | int | float | str:
    """A value TensorBoard can hold (bool, number or text)."""
    if value is None:
        return "None"
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(list(value)) if isinstance(value, (tuple, list)) else str(value)


def hparam_columns(
    model: Any, datamodule: Any = None, seed: int | None = None, max_epochs: int | None = None
) -> dict[str, bool | int | float | str]:
    """The HParams row of a run: the headline columns, then every other set hyperparameter.

    Args:
        model: The LightningModule (its ``hparams`` and class).
        datamodule: Its data module (``batch_size``, ``augment``), or None.
        seed: The run's ``seed_everything``.
        max_epochs: The trainer's epoch limit.

    Example:
        >>> class Net:
        ...     def __init__(self, optimizer="adam", learning_rate=0.01, keep_prob=1.0): ...
        >>> net = Net()
        >>> net.hparams = {"optimizer": "gd", "learning_rate": 0.5, "keep_prob": 1.0,
        ...                "_class_path": "x.Net", "num_classes": 2}
        >>> hparam_columns(net, seed=0)
        {'model': 'Net', 'optimizer': 'gd', 'learning_rate': 0.5, 'seed': 0}
    """
    hp = dict(getattr(model, "hparams", {}) or {})
    columns: dict[str, Any] = {"model": type(model).__name__}
    columns |= {k: hp[k] for k in ("optimizer", "learning_rate") if k in hp}
    data = dict(getattr(datamodule, "hparams", {}) or {}) if datamodule is not None else {}
    if "batch_size" in data:
        batch = data["batch_size"]
        columns["batch_size"] = "full" if batch is None else batch  # None: the whole split
    if seed is not None:
        columns["seed"] = seed
    defaults = _defaults(type(model))
    for key, value in hp.items():
        if key.startswith("_") or key in _LINKED or key in columns:
            continue
        if key not in defaults or _value(defaults[key]) != _value(value):
            columns[key] = value
    if data.get("augment") not in (None, "None", "[]", False):
        columns["augment"] = data["augment"]
    if max_epochs is not None and max_epochs >= 0:
        columns["max_epochs"] = max_epochs
    return {k: _value(v) for k, v in columns.items()}


def score_columns(scores: Mapping[str, Any]) -> dict[str, float]:
    """The split scores as HParams metrics, ``{split}/{score}``: errors first, then F1 (or
    RMSE and R^2 for a regressor), each over the splits in the order given.

    ``scores`` may spell them ``{split}/{score}`` or ``hparams/{split}_{score}``.

    Example:
        >>> score_columns({"hparams/train_error": 0.1, "hparams/train_f1": 0.8,
        ...                "hparams/train_dev_error": 0.2, "dev/error": 0.3, "lr": 0.1})
        {'train/error': 0.1, 'train_dev/error': 0.2, 'dev/error': 0.3, 'train/f1': 0.8}
    """
    named: dict[str, float] = {}
    for key, value in scores.items():
        name = key.removeprefix("hparams/")
        if name == key and "/" in name:
            split, _, score = name.partition("/")
        else:
            split, _, score = name.rpartition("_")
        if split and score in _SCORES and isinstance(value, (int, float)):
            named[f"{split}/{score}"] = float(value)
    return {k: named[k] for score in _SCORES for k in named if k.endswith(f"/{score}")}


def hparams_summaries(
    columns: Mapping[str, bool | int | float | str], metrics: Sequence[str]
) -> list[Any]:
    """TensorBoard's three HParams summaries of one run: the experiment (its columns, the
    :data:`HEADLINE` ones flagged to be ticked), the session's values, its end (success).

    Built from TensorBoard's protos (``tensorboard.plugins.hparams.summary`` needs TensorFlow).

    Example:
        >>> exp, start, end = hparams_summaries({"model": "Net", "depth": 3}, ["dev/error"])
        >>> [v.tag for s in (exp, start, end) for v in s.value]
        ['_hparams_/experiment', '_hparams_/session_start_info', '_hparams_/session_end_info']
    """
    import time

    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    def summary(tag: str, **data: Any) -> Any:
        content = plugin_data_pb2.HParamsPluginData(**data)
        out = summary_pb2.Summary()
        value = out.value.add(tag=tag, metadata=metadata.create_summary_metadata(content))
        value.tensor.CopyFrom(metadata.NULL_TENSOR)
        return out

    now = time.time()
    infos, start = [], plugin_data_pb2.SessionStartInfo(start_time_secs=now)
    for name, value in columns.items():
        if isinstance(value, bool):
            kind = api_pb2.DATA_TYPE_BOOL
            start.hparams[name].bool_value = value
        elif isinstance(value, (int, float)):
            kind = api_pb2.DATA_TYPE_FLOAT64
            start.hparams[name].number_value = float(value)
        else:
            kind = api_pb2.DATA_TYPE_STRING
            start.hparams[name].string_value = str(value)
        infos.append(api_pb2.HParamInfo(name=name, type=kind, differs=name in HEADLINE))
    names = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m)) for m in metrics]
    experiment = api_pb2.Experiment(time_created_secs=now, hparam_infos=infos, metric_infos=names)
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=now)
    return [
        summary(metadata.EXPERIMENT_TAG, experiment=experiment),
        summary(metadata.SESSION_START_INFO_TAG, session_start_info=start),
        summary(metadata.SESSION_END_INFO_TAG, session_end_info=end),
    ]
