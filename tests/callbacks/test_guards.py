import math
import random
import re
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from conftest import write_recipe
from mlstrategy.callbacks.guards import NonFiniteError, NonFiniteGuard, RNGState
from mlstrategy.cli import main
from mlstrategy.data import ArrayDataModule
from mlstrategy.run_folder import FAILED_FILE


def test_rng_state_round_trips_every_generator():
    cb = RNGState()
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    state = cb.state_dict()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    cb.load_state_dict(state)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]
    # It survives the weights_only loader used for checkpoints.
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    cb.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(torch.rand(3), expected[0])


def _diverging_run(in_tmp, capsys, model: dict, data: dict) -> tuple[Path, str]:
    """Run a recipe through the CLI that must stop on a non-finite value: its run folder and
    the one line the user sees."""
    recipe = write_recipe(in_tmp / "diverge.yaml", model, data, {"max_epochs": 30})
    assert main(["run", str(recipe)]) == 1
    err = capsys.readouterr().err
    assert "training stopped:" in err
    (run_dir,) = (in_tmp / "logs" / "diverge").iterdir()
    return run_dir, " ".join(err.split())  # the console wraps long lines


def _checkpoints_left(run_dir: Path) -> list[Path]:
    """Every checkpoint in the run folder, each checked: finite weights, finite monitored score."""
    paths = sorted(run_dir.rglob("*.ckpt"))
    for path in paths:
        checkpoint = torch.load(path, weights_only=True)
        for name, value in checkpoint["state_dict"].items():
            if value.is_floating_point():
                assert torch.isfinite(value).all(), (path.name, name)
        states = [s for k, s in checkpoint["callbacks"].items() if k.startswith("ModelCheckpoint")]
        assert states, path
        for state in states:
            for key in ("best_model_score", "current_score"):
                if state[key] is not None:
                    assert math.isfinite(float(state[key])), (path.name, key, state[key])
    return paths


def test_absurd_learning_rate_leaves_no_checkpoint_and_says_to_lower_it(in_tmp, capsys):
    # lr = 1e38: one step makes the weights about 3.8e37, finite, but the dev cost NaN. Before,
    # best.ckpt was written with those weights and best_model_score=inf.
    run_dir, err = _diverging_run(
        in_tmp,
        capsys,
        {
            "class_path": "mlstrategy.models.LogisticRegression",
            "init_args": {"optimizer": "gd", "learning_rate": 1e38},
        },
        {
            "class_path": "mlstrategy.data.ArrayDataModule",
            "init_args": {
                "source": {"class_path": "mlstrategy.data.BreastCancer"},
                "batch_size": None,
            },
        },
    )
    assert _checkpoints_left(run_dir) == []
    assert "cost/dev=nan at epoch 0" in err
    assert "No checkpoint was written" in err and "learning_rate=1e+37" in err
    assert "last good checkpoint" not in err
    failed = (run_dir / FAILED_FILE).read_text()
    assert "NonFiniteError" in failed and "No checkpoint was written" in failed


@pytest.mark.slow
def test_divergence_after_good_epochs_names_the_last_good_checkpoint(in_tmp, capsys):
    # Plain gradient descent at alpha = 100 on a ReLU net: the dev cost grows about 10^4 per
    # epoch from epoch 1 and overflows at epoch 8 (measured), after seven finite epochs.
    run_dir, err = _diverging_run(
        in_tmp,
        capsys,
        {
            "class_path": "mlstrategy.models.DeepNet",
            "init_args": {"layer_dims": [16], "optimizer": "gd", "learning_rate": 100.0},
        },
        {
            "class_path": "mlstrategy.data.ArrayDataModule",
            "init_args": {
                "source": {"class_path": "mlstrategy.data.BreastCancer"},
                "batch_size": None,
            },
        },
    )
    left = _checkpoints_left(run_dir)
    assert [p.name for p in left] == ["best.ckpt", "last.ckpt"]
    match = re.search(r"The last good checkpoint is (\S+?\.ckpt) \(epoch (\d+)\)", err)
    assert match, err
    named, saved_epoch = Path(match.group(1)), int(match.group(2))
    assert named.is_file() and named.name == "last.ckpt"
    stopped_at = int(re.search(r"at epoch (\d+)", err).group(1))
    assert stopped_at >= 2  # a divergence after good epochs, not at the first
    # Lightning writes last.ckpt with each new best; the epoch named is the one it holds.
    assert torch.load(named, weights_only=True)["epoch"] == saved_epoch < stopped_at
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    (state,) = [s for k, s in best["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert f"cost/dev={float(state['best_model_score']):.4g}" in err


def test_guard_stops_on_a_nan_cost_before_backward():
    from mlstrategy.models import LogisticRegression

    guard = NonFiniteGuard()
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    model = LogisticRegression((3,), learning_rate=0.5)
    with pytest.raises(NonFiniteError, match=r"at epoch 0, step 0\..*learning_rate=0\.05"):
        guard.on_before_backward(trainer, model, torch.tensor(float("nan")))
    guard.on_before_backward(trainer, model, torch.tensor(0.5))


def _fit(tmp_path, max_epochs, ckpt_path=None, every=None):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from mlstrategy.models import DeepNet

    L.seed_everything(0)
    model = DeepNet(input_shape=(64,), num_classes=10, layer_dims=[16], keep_prob=0.7)
    callbacks = [RNGState()]
    if every:
        callbacks.append(
            ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=every, save_top_k=-1)
        )
    trainer = L.Trainer(
        max_epochs=max_epochs,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=bool(every),
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        num_sanity_val_steps=0,
    )
    from mlstrategy.data import Digits

    trainer.fit(model, datamodule=ArrayDataModule(Digits(), batch_size=64), ckpt_path=ckpt_path)
    return model


def test_resume_from_a_mid_epoch_checkpoint_matches_an_uninterrupted_fit(tmp_path):
    reference = _fit(tmp_path, max_epochs=2, every=5)
    # 17 batches per epoch: step 20 is 3 batches into the second epoch.
    mid = tmp_path / "epoch=1-step=20.ckpt"
    assert mid.is_file()
    resumed = _fit(tmp_path / "resumed", max_epochs=2, ckpt_path=mid)
    for (name, a), b in zip(
        reference.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
