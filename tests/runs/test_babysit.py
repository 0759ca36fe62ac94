"""Babysitting one model: ``run --resume`` with changed hyperparameters applies them from the
resumed epoch (logged ``lr``, console, config history), refuses what cannot change mid-run, and
an interrupted fit gives the caller its SIGINT handler back."""

from __future__ import annotations

import json
import os
import signal
from io import StringIO
from pathlib import Path

import pytest
import torch
import yaml
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import write_recipe
from mlstrategy.cli import main
from mlstrategy.models import DeepNet
from mlstrategy.models.optim import build_optimizer, set_hyperparameters
from mlstrategy.models.schedules import build_lr_decay, retarget_learning_rate
from mlstrategy.run_folder import CONFIG_FILE, CONFIG_HISTORY_FILE
from mlstrategy.runs.babysit import resume_changes
from mlstrategy.runs.recipes import recipe_configs
from mlstrategy.runs.run import run_recipe

ALPHA0 = 0.5  # the recipe's learning rate, decayed as alpha0 / (1 + epoch)


def _recipe(path: Path, max_epochs: int) -> Path:
    return write_recipe(
        path,
        {
            "class_path": "mlstrategy.models.DeepNet",
            "init_args": {
                "layer_dims": [4],
                "optimizer": "gd",
                "learning_rate": ALPHA0,
                "lr_decay": "inverse_time",
                "decay_rate": 1.0,
            },
        },
        {
            "class_path": "mlstrategy.data.ArrayDataModule",
            "init_args": {
                "source": {"class_path": "mlstrategy.data.BreastCancer"},
                "batch_size": None,  # batch GD: one step per epoch, so step == epoch
            },
        },
        {"max_epochs": max_epochs},
    )


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _interrupted(
    recipe: Path,
    monkeypatch: pytest.MonkeyPatch,
    hook: str = "on_train_epoch_start",
    epoch: int = 0,
) -> Path:
    """Run ``recipe`` in this process and press Ctrl-C (a real SIGINT) in the model's ``hook``
    at epoch ``epoch``; the caller's SIGINT handler must be back afterwards. Returns the run
    folder."""
    fired: list[int] = []
    original = getattr(DeepNet, hook)

    def press_ctrl_c(self: DeepNet, *args: object, **kwargs: object) -> None:
        if self.current_epoch == epoch and not fired:
            fired.append(epoch)
            os.kill(os.getpid(), signal.SIGINT)
        original(self, *args, **kwargs)

    monkeypatch.setattr(DeepNet, hook, press_ctrl_c)
    previous = signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_recipe(recipe_configs(recipe)[0], console=Console(file=StringIO()))
        # Lightning's graceful shutdown sets SIG_IGN; run_recipe puts the caller's back.
        assert signal.getsignal(signal.SIGINT) is _raise_keyboard_interrupt
    finally:
        signal.signal(signal.SIGINT, previous)
    monkeypatch.setattr(DeepNet, hook, original)
    assert fired == [epoch]
    return recipe.parent / "logs" / recipe.stem


def _runs(recipe_logs: Path) -> list[Path]:
    """The recipe's run folders, each interrupted once it had a checkpoint."""
    runs = [p for p in recipe_logs.glob("*") if p.is_dir()]
    for run in runs:
        assert (run / "FAILED").read_text().startswith("interrupted; continue exactly")
    return runs


def _logged_lr(run_dir: Path) -> dict[int, float]:
    """The ``lr`` scalar of every TensorBoard events file in the run folder, by step."""
    rates: dict[int, float] = {}
    for events in sorted(run_dir.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        if "lr" in acc.Tags()["scalars"]:
            rates.update({e.step: e.value for e in acc.Scalars("lr")})
    return rates


@pytest.mark.slow
def test_a_fit_interrupted_while_it_sets_up_gives_the_caller_its_sigint_handler_back(
    in_tmp, monkeypatch
):
    # Before its first batch (data and model setup, checkpoint restore) Lightning's own signal
    # connector holds no handlers to restore, so its SIG_IGN would stay: Ctrl-C dead for good.
    recipe = _recipe(in_tmp / "short.yaml", max_epochs=3)
    _interrupted(recipe, monkeypatch, hook="setup")
    (run_dir,) = in_tmp.glob("logs/short/*")
    assert (run_dir / "FAILED").read_text().startswith("interrupted before its first checkpoint")


@pytest.mark.slow
def test_resume_with_a_new_learning_rate_trains_at_it_from_the_resumed_epoch(
    in_tmp, monkeypatch, capsys
):
    recipe = _recipe(in_tmp / "sit.yaml", max_epochs=6)
    (run_dir,) = _runs(_interrupted(recipe, monkeypatch, epoch=3))
    capsys.readouterr()
    args = ["run", str(recipe), "--model.init_args.learning_rate=0.1", "--resume", str(run_dir)]
    assert main(args) == 0
    out = " ".join(capsys.readouterr().out.split())
    line = "changed on resume: model.init_args.learning_rate: 0.5 -> 0.1, from epoch 3 (step 3)"
    assert line in out
    # The old rate (decayed alpha0 / (1 + epoch)) before epoch 3, the new one from it, on the
    # same schedule: in the cost curve (metrics.json) and in TensorBoard's lr.
    want = {e: (ALPHA0 if e < 3 else 0.1) / (1 + e) for e in range(6)}
    curve = json.loads((run_dir / "metrics.json").read_text())["cost_curve"]
    assert {int(p["epoch"]): p["lr"] for p in curve} == pytest.approx(want)
    assert _logged_lr(run_dir) == pytest.approx(want, rel=1e-6)  # float32 events
    (entry,) = yaml.safe_load((run_dir / CONFIG_HISTORY_FILE).read_text())
    assert (entry["epoch"], entry["step"], entry["resumed_from"]) == (3, 3, "checkpoints/last.ckpt")
    assert entry["changes"] == [{"key": "model.init_args.learning_rate", "old": 0.5, "new": 0.1}]
    config = yaml.safe_load((run_dir / CONFIG_FILE).read_text())
    assert config["model"]["init_args"]["learning_rate"] == 0.1  # the recipe it trains with now
    assert not (run_dir / "FAILED").exists()


@pytest.mark.slow
def test_changes_a_resume_cannot_apply_exit_2_and_leave_the_folder_byte_identical(
    in_tmp, monkeypatch, capsys
):
    recipe = _recipe(in_tmp / "arch.yaml", max_epochs=3)
    (run_dir,) = _runs(_interrupted(recipe, monkeypatch, epoch=1))
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    for override, key in [
        ("--model.init_args.layer_dims=[8]", "model.init_args.layer_dims"),
        ("--model.init_args.optimizer=adam", "model.init_args.optimizer"),
        ("--data.init_args.dev_fraction=0.3", "data.init_args.dev_fraction"),
    ]:
        capsys.readouterr()
        assert main(["run", str(recipe), override, "--resume", str(run_dir)]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "Traceback" not in err and f"{key}:" in err
        assert "Start a new run" in err and "Nothing in" in err
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before  # FAILED still names the command that continues the run


def test_resume_changes_name_the_refused_keys_and_keep_the_applicable_ones(tmp_path):
    old = {
        "seed_everything": 0,
        "model": {"class_path": "m.Net", "init_args": {"learning_rate": 0.1, "layer_dims": [4]}},
        "data": {"class_path": "d.Data", "init_args": {"seed": 0, "eval_batch_size": 64}},
        "trainer": {"max_epochs": 3},
        "config": ["a.yaml"],
    }
    (tmp_path / CONFIG_FILE).write_text(yaml.safe_dump(old))
    checkpoint = {"hyper_parameters": {"learning_rate": 0.1, "beta1": 0.9}}
    new = json.loads(json.dumps(old))
    new["model"]["init_args"]["learning_rate"] = 0.01
    new["data"]["init_args"]["eval_batch_size"] = 128
    new["trainer"]["max_epochs"] = 9
    new["config"] = ["elsewhere/a.yaml"]  # the same recipe, spelled from another folder
    hparams = {"learning_rate": 0.01, "beta1": 0.95}
    changes = {c.key: (c.old, c.new) for c in resume_changes(tmp_path, new, checkpoint, hparams)}
    assert changes == {
        "data.init_args.eval_batch_size": (64, 128),
        "model.init_args.beta1": (0.9, 0.95),  # from the checkpoint, the optimizer's values
        "model.init_args.learning_rate": (0.1, 0.01),
        "trainer.max_epochs": (3, 9),
    }
    new["seed_everything"] = 1
    new["model"]["class_path"] = "m.Other"
    new["data"]["init_args"]["seed"] = 1
    with pytest.raises(ValueError) as refused:
        resume_changes(tmp_path, new, checkpoint, hparams)
    message = str(refused.value)
    for key in ("model.class_path: m.Net -> m.Other", "data.init_args.seed: 0 -> 1"):
        assert key in message
    assert "seed_everything: 0 -> 1" in message and "without --resume" in message
    assert "learning_rate" not in message.split(". A resumed run")[0]  # allowed: not listed


def test_set_hyperparameters_writes_torch_names_and_keeps_the_optimizer_state():
    w = torch.nn.Parameter(torch.ones(3))
    for name, want in [
        ("momentum", {"momentum": 0.5, "dampening": 0.5}),
        ("rmsprop", {"alpha": 0.9, "eps": 1e-6}),
        ("adamw", {"betas": (0.5, 0.9), "eps": 1e-6, "weight_decay": 0.1}),
    ]:
        opt = build_optimizer(name, [w], learning_rate=0.1)
        w.grad = torch.ones(3)
        opt.step()
        state = {k: v.clone() for k, v in opt.state[w].items() if torch.is_tensor(v)}
        values = {"beta1": 0.5, "beta2": 0.9, "epsilon": 1e-6, "weight_decay": 0.1}
        unused = set_hyperparameters(opt, name, values)
        group = opt.param_groups[0]
        assert {k: group[k] for k in want} == want
        assert (
            set(unused)
            == set(values)
            - {
                "momentum": {"beta1"},
                "rmsprop": {"beta2", "epsilon"},
                "adamw": set(values),
            }[name]
        )
        for k, v in state.items():  # moments, momentum buffers, step count: untouched
            assert torch.equal(opt.state[w][k], v)


def test_retarget_learning_rate_keeps_group_ratios_and_follows_the_new_schedule():
    head, backbone = torch.nn.Parameter(torch.ones(1)), torch.nn.Parameter(torch.ones(1))
    groups = [{"params": [head], "lr": 0.2}, {"params": [backbone], "lr": 0.02}]
    opt = torch.optim.SGD(groups, lr=0.2)  # a run without decay so far, then a new alpha0
    decay = build_lr_decay(opt, "exponential", 0.5)  # the new recipe's schedule
    opt.load_state_dict(torch.optim.SGD(groups, lr=0.2).state_dict())  # the checkpoint's groups
    retarget_learning_rate(opt, decay, 0.5, "exponential", 0.5, 1, epoch=2)
    # alpha0 halves (0.2 -> 0.1, the backbone keeps 1/10 of it), times 0.5^2 at epoch 2.
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.025, 0.0025])
    assert decay is not None and decay.base_lrs == pytest.approx([0.1, 0.01])
    opt.step()
    decay.step()  # epoch 3: 0.5^3
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.0125, 0.00125])
