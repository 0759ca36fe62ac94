"""What a fit writes to TensorBoard: ``cost`` in a train and a dev sub-run (one chart, two
lines), the regularized ``J`` beside it, and the raw per-step costs."""

from __future__ import annotations

import copy
import threading

import lightning as L
import numpy as np
import pytest
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

from mlstrategy.data import ArrayDataModule, Moons
from mlstrategy.models import DeepNet


def _fit(tmp_path, epochs: int, batch_size: int | None, l2_lambda: float = 0.0, callbacks=()):
    L.seed_everything(0)
    data = ArrayDataModule(Moons(n_samples=100), batch_size=batch_size, seed=0)
    model = DeepNet(
        data.input_shape, data.num_classes, layer_dims=[5, 3], learning_rate=0.3,
        optimizer="gd", l2_lambda=l2_lambda,
    )  # fmt: skip
    before = copy.deepcopy(model.state_dict())
    logger = TensorBoardLogger(str(tmp_path), name="moons", version="run")
    L.Trainer(
        max_epochs=epochs,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        callbacks=list(callbacks),
    ).fit(model, datamodule=data)
    return model, before, logger.log_dir


def _scalars(folder, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    if tag not in events.Tags()["scalars"]:
        return []
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_one_step_j_minus_cost_is_the_l2_term_of_the_weights_it_started_from(tmp_path):
    lam = 0.7
    model, before, log_dir = _fit(tmp_path, epochs=1, batch_size=None, l2_lambda=lam)
    m = model.train_size
    assert m == 60  # Moons(100) with the default dev and test fractions
    weights = [v.numpy() for k, v in before.items() if k.endswith("weight") and v.ndim == 2]
    assert len(weights) == 3  # two hidden layers and the output layer; biases left out
    l2 = lam / (2 * m) * sum(float(np.sum(w.astype(np.float64) ** 2)) for w in weights)
    train = log_dir + "/train"
    ((s0, cost_step),) = _scalars(train, "cost/step")
    ((s1, j_step),) = _scalars(train, "J/step")
    assert s0 == s1 == 0
    assert j_step - cost_step == pytest.approx(l2, rel=1e-4, abs=1e-6)
    # Batch gradient descent: one step per epoch, so the epoch's cost and J are that step's.
    ((_, cost),) = _scalars(train, "cost")
    ((_, j),) = _scalars(train, "J")
    assert cost == pytest.approx(cost_step, abs=1e-6)
    assert j - cost == pytest.approx(l2, rel=1e-4, abs=1e-6)
    assert cost == pytest.approx(model.cost_curve[0]["cost/train"], abs=1e-6)


def test_j_of_batch_gradient_descent_falls_every_epoch(tmp_path):
    _, _, log_dir = _fit(tmp_path, epochs=8, batch_size=None, l2_lambda=1.0)
    j = [v for _, v in _scalars(log_dir + "/train", "J")]
    cost = [v for _, v in _scalars(log_dir + "/train", "cost")]
    assert len(j) == 8 and j == sorted(j, reverse=True)
    assert all(a > b for a, b in zip(j, cost, strict=True))  # the L2 term is positive


def test_train_and_dev_cost_are_one_tag_in_two_sub_runs_and_steps_are_raw(tmp_path):
    model, _, log_dir = _fit(tmp_path, epochs=3, batch_size=16)  # 60 train: 4 steps an epoch
    train = _scalars(log_dir + "/train", "cost")
    dev = _scalars(log_dir + "/dev", "cost")
    assert [s for s, _ in train] == [s for s, _ in dev] == [0, 1, 2]
    curve = model.cost_curve
    assert [v for _, v in train] == pytest.approx([p["cost/train"] for p in curve], abs=1e-6)
    assert [v for _, v in dev] == pytest.approx([p["cost/dev"] for p in curve], abs=1e-6)
    # Every mini-batch's own cost, numbered across epochs; without L2, J is the cost.
    steps = [c for p in curve for c in p["step_costs"]]
    logged = _scalars(log_dir + "/train", "cost/step")
    assert [s for s, _ in logged] == list(range(12))
    assert [v for _, v in logged] == pytest.approx(steps, abs=1e-6)
    assert _scalars(log_dir + "/train", "J/step") == logged
    # The run's own events keep lr and no longer split the cost into two charts.
    assert [v for _, v in _scalars(log_dir, "lr")] == pytest.approx([0.3, 0.3, 0.3])
    assert not _scalars(log_dir, "cost/train") and not _scalars(log_dir, "cost/dev")
    # TensorBoard sees the sub-runs as runs of their own: a line (and colour) each.
    runs = EventMultiplexer().AddRunsFromDirectory(str(tmp_path)).Reload()
    assert {"moons/run", "moons/run/train", "moons/run/dev"} <= set(runs.Runs())
    with_cost = {r for r, tags in runs.Runs().items() if "cost" in tags["scalars"]}
    assert with_cost == {"moons/run/train", "moons/run/dev"}


def test_each_epochs_costs_reach_callbacks_and_the_bar_but_not_the_loggers_flat_names(tmp_path):
    """What checkpoints, early stopping and the progress bar read after each epoch is that
    epoch's cost, the one in the cost curve; nothing goes to a logger under those names."""
    from lightning.pytorch.callbacks import Callback

    seen = []

    class Watch(Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            # Runs before the module's own hook: the train cost is the previous epoch's here,
            # the dev cost this epoch's (validation has run).
            seen.append(
                (
                    float(trainer.callback_metrics["cost/dev"]),
                    trainer.progress_bar_metrics["cost/dev"],
                    "cost/train" in trainer.callback_metrics,
                )
            )

    L.seed_everything(0)
    data = ArrayDataModule(Moons(n_samples=100), batch_size=32, seed=0)
    model = DeepNet(data.input_shape, data.num_classes, layer_dims=[5], learning_rate=0.3)
    trainer = L.Trainer(
        max_epochs=3,
        callbacks=[Watch()],
        logger=TensorBoardLogger(str(tmp_path), name="moons", version="run"),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    curve = model.cost_curve
    assert [s[0] for s in seen] == pytest.approx([p["cost/dev"] for p in curve], rel=1e-6)
    assert [s[1] for s in seen] == [s[0] for s in seen]  # the bar holds plain numbers
    assert [s[2] for s in seen] == [False, True, True]
    assert float(trainer.callback_metrics["cost/train"]) == pytest.approx(curve[-1]["cost/train"])
    assert trainer.progress_bar_metrics["cost/train"] == curve[-1]["cost/train"]
    assert not {"cost/train", "cost/dev"} & set(trainer.logged_metrics)


def _open_event_writers() -> int:
    """TensorBoard's writer threads alive now: one per event file still open."""
    return sum(type(t).__name__ == "_AsyncWriterThread" for t in threading.enumerate())


class _FailAtEpoch(L.Callback):
    def __init__(self, epoch: int, error: BaseException) -> None:
        self.epoch, self.error = epoch, error

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise self.error


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_failed_fit_closes_its_sub_runs_and_keeps_the_epochs_it_finished(tmp_path, error):
    # Lightning calls no module hook when a fit fails (on_fit_end, which closes the writers,
    # is skipped): without the module's closing callback, the train and dev sub-runs' writers
    # stayed open with a thread each, still running as an interrupted run shut down.
    before = _open_event_writers()
    expected = SystemExit if isinstance(error, KeyboardInterrupt) else RuntimeError
    with pytest.raises(expected):  # Lightning turns Ctrl-C into sys.exit(1)
        _fit(tmp_path, epochs=6, batch_size=None, callbacks=[_FailAtEpoch(3, error)])
    assert _open_event_writers() <= before
    log_dir = tmp_path / "moons" / "run"
    assert [s for s, _ in _scalars(log_dir / "train", "cost")] == [0, 1, 2]
    assert [s for s, _ in _scalars(log_dir / "dev", "cost")] == [0, 1, 2]
