"""The toolkit's other workflows under 2-process DDP on the CPU (gloo), launched as users launch
them: a study folder (a frozen-backbone transfer and a multi-task net with missing labels, both
early stopping) through ``mlstrategy run``, ``mlstrategy lr-find``, and what every process
holds after early stopping's restore-best and after gradual unfreezing (a script that saves
each rank's weights). Each test is one launch of two processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

from conftest import write_recipe
from mlstrategy.evaluation.scoring import evaluate_splits
from mlstrategy.models import ConvNet
from mlstrategy.runs.lightning_cli import build_run
from test_ddp import DDP, DIGITS, ENV, EXE, SOFTMAX, _folders, launch

MAX_EPOCHS, PATIENCE = 8, 1
BASE = {  # the study's _base.yaml: every run stops early and restores its best weights
    "trainer": {
        "max_epochs": MAX_EPOCHS,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "callbacks": [
            {
                "class_path": "mlstrategy.callbacks.EarlyStopping",
                "init_args": {"monitor": "cost/dev", "patience": PATIENCE},
            }
        ],
    }
}
MULTITASK = {  # 81 scenes, 30% of labels missing: the two processes' shares differ
    "model": {
        "class_path": "mlstrategy.models.MultiTaskNet",
        "init_args": {
            "heads": {
                "pedestrian": {"kind": "binary"},
                "signs": {"kind": "multilabel", "columns": ["stop_sign", "traffic_light"]},
            },
            "layer_dims": [8],
            "learning_rate": 0.01,
        },
    },
    "data": {
        "class_path": "mlstrategy.data.MultiTaskDataModule",
        "init_args": {
            "source": {
                "class_path": "mlstrategy.data.StreetScenes",
                "init_args": {"n_samples": 81, "image_size": 16, "missing_fraction": 0.3},
            },
            "batch_size": 16,
        },
    },
}


# Every file a process opens for writing, logged per process (Python's audit hook, installed
# at start-up through sitecustomize; Lightning's second process inherits the environment).
WRITES_HOOK = """\
import os, sys

_log = os.environ.get("MLSTRATEGY_TEST_WRITES")
if _log:
    _rank = os.environ.get("LOCAL_RANK", "0")
    _fd = os.open(f"{_log}/rank{_rank}-{os.getpid()}.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    _writes = os.O_WRONLY | os.O_RDWR | os.O_APPEND

    def _hook(event, args):
        if event == "open" and not isinstance(args[0], int):
            path, mode, flags = args
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and flags & _writes
            ):
                os.write(_fd, (os.path.abspath(os.fsdecode(path)) + "\\n").encode())

    sys.addaudithook(_hook)
"""


def _watching_writes(root: Path) -> tuple[dict[str, str], Path]:
    """The environment that logs each process's writes into ``root/writes``, and that folder."""
    hooks, log = root / "hooks", root / "writes"
    hooks.mkdir()
    log.mkdir()
    (hooks / "sitecustomize.py").write_text(WRITES_HOOK)
    return {**ENV, "PYTHONPATH": str(hooks), "MLSTRATEGY_TEST_WRITES": str(log)}, log


def _written(log: Path, rank: int, under: Path) -> list[str]:
    """The files under ``under`` that the process of ``rank`` opened for writing."""
    paths = [p for f in log.glob(f"rank{rank}-*.txt") for p in f.read_text().splitlines()]
    return sorted(p for p in paths if under in Path(p).parents)


def _source_checkpoint(path: Path) -> Path:
    """A ConvNet checkpoint with batch norm and distinctive running statistics, as a finished
    toolkit run leaves it: the backbone a transfer recipe freezes."""
    torch.manual_seed(0)
    model = ConvNet((3, 8, 8), 4, channels=[4, 6], batch_norm=True, global_pool="flatten")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    hparams = {**dict(model.hparams), "_class_path": "mlstrategy.models.ConvNet"}
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams}, path)
    return path


def _transfer(source: Path) -> dict[str, Any]:
    return {
        "model": {
            "class_path": "mlstrategy.models.TransferNet",
            "init_args": {
                "backbone": "checkpoint",
                "checkpoint": str(source),
                "strategy": "freeze",
                "learning_rate": 0.05,
            },
        },
        "data": {
            "class_path": "mlstrategy.data.ArrayDataModule",
            "init_args": {
                "source": {
                    "class_path": "mlstrategy.data.DigitImages",
                    "init_args": {"size": 8, "classes": [5, 6, 7], "labels_per_class": 15},
                },
                "dev_fraction": 0.25,
                "batch_size": 8,
            },
        },
    }


def _study(root: Path) -> Path:
    study = root / "study"
    study.mkdir()
    recipes = {
        "_base": BASE,
        "a_transfer": _transfer(_source_checkpoint(root / "source.ckpt")),
        "b_multitask": MULTITASK,
    }
    for name, recipe in recipes.items():
        (study / f"{name}.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return study


def _backbone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The backbone's entries (weights, running statistics, batches tracked)."""
    return {k: v for k, v in state.items() if k.startswith("net.features.")}


def _assert_close(ddp: Any, alone: Any, where: str = "") -> None:
    """Scores from the DDP run equal one process's: counts exactly, real numbers to 1e-5."""
    if isinstance(alone, dict):
        assert sorted(ddp) == sorted(alone), where
        for key in alone:
            _assert_close(ddp[key], alone[key], f"{where}.{key}")
    elif isinstance(alone, list):
        assert len(ddp) == len(alone), where
        for i, (a, b) in enumerate(zip(ddp, alone, strict=True)):
            _assert_close(a, b, f"{where}[{i}]")
    elif isinstance(alone, float):
        assert ddp == pytest.approx(alone, rel=1e-5, abs=1e-7, nan_ok=True), where
    else:
        assert ddp == alone, where


@pytest.mark.slow
def test_ddp_study_of_transfer_and_multitask_runs_stopping_early(in_tmp):
    study = _study(in_tmp)
    done = launch([str(EXE), "run", str(study), *DDP], in_tmp)
    # Before the fix, rank 1 compared the runs before rank 0 had written the last one's
    # metrics.json, and failed (rank 0 still exited 0): both processes' stderr is here.
    assert "error:" not in done.stderr, done.stderr[-3000:]
    assert done.stdout.count("run folder:") == 2  # one report per run, from rank 0
    assert done.stdout.count("winner:") == 1  # one comparison
    for name in ("a_transfer", "b_multitask"):
        (run_dir,) = _folders(in_tmp, f"study/{name}")  # one folder per run
        metrics = json.loads((run_dir / "metrics.json").read_text())
        best = torch.load(metrics["best_checkpoint"], weights_only=True)
        # Early stopping stopped both runs (the ranks agreed) PATIENCE epochs after the best.
        assert metrics["epochs"] < MAX_EPOCHS, name
        assert best["epoch"] == metrics["epochs"] - 1 - PATIENCE, name

    # Transfer: the frozen backbone, batch-norm statistics included, is the source's, bit for
    # bit, in the best and the last checkpoint.
    (run_dir,) = _folders(in_tmp, "study/a_transfer")
    source = _backbone(torch.load(in_tmp / "source.ckpt", weights_only=True)["state_dict"])
    assert any("running_mean" in k for k in source)
    for name in ("best.ckpt", "last.ckpt"):
        trained = torch.load(run_dir / "checkpoints" / name, weights_only=True)["state_dict"]
        assert _backbone(trained).keys() == source.keys()
        for key, value in source.items():
            assert torch.equal(trained[key], value), (name, key)

    # Multi-task: every split's per-task masked scores count each present label once and equal
    # one process's scores of the same checkpoint.
    (run_dir,) = _folders(in_tmp, "study/b_multitask")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    cli = build_run([study / "_base.yaml", study / "b_multitask.yaml"], [], in_tmp / "alone")
    alone = evaluate_splits(cli.trainer, cli.model, cli.datamodule, metrics["best_checkpoint"])
    assert sum(metrics["splits"][s]["n"] for s in ("train", "dev", "test")) == 81
    _assert_close(metrics["splits"], alone, "splits")


@pytest.mark.slow
def test_ddp_lr_find_writes_one_folder_and_prints_once(in_tmp):
    recipe = in_tmp / "sweep.yaml"
    trainer = {k: v for k, v in BASE["trainer"].items() if k != "callbacks"}
    recipe.write_text(yaml.safe_dump({**MULTITASK, "trainer": trainer}, sort_keys=False))
    done = launch([str(EXE), "lr-find", str(recipe), "--num-training=15", *DDP], in_tmp)
    # Before the fix, rank 1 wrote its own copy into logs/lr-find/sweep/pending-run-folder/
    # and printed the suggestion a second time.
    (run_dir,) = _folders(in_tmp, "lr-find/sweep")
    assert done.stdout.count("suggested learning rate:") == 1
    assert f"plot: {run_dir / 'lr_find.png'}" in done.stdout.replace("\n", "")
    found = json.loads((run_dir / "lr_find.json").read_text())
    rates = found["lr"]
    assert len(rates) == 15 and rates == sorted(rates)
    assert f"{found['suggestion']:.3g}" in done.stdout
    assert not list(in_tmp.glob(".lr_find_*.ckpt"))  # the sweep's scratch checkpoint is gone


@pytest.mark.slow
def test_ddp_learning_curve_writes_one_folder_and_prints_once(in_tmp):
    recipe = write_recipe(in_tmp / "curve.yaml", SOFTMAX, DIGITS, {"max_epochs": 2})
    env, writes = _watching_writes(in_tmp)
    done = launch([str(EXE), "learning-curve", str(recipe), "--sizes=0.5,1", *DDP], in_tmp, env)
    # Before the fix, rank 1 reserved a second timestamped folder, wrote its own plot, JSON and
    # events there, and printed every point and the table a second time.
    (root,) = _folders(in_tmp, "curve-learning-curve")
    assert _written(writes, 1, in_tmp / "logs") == []  # the second process wrote nothing
    ours = [Path(p) for p in _written(writes, 0, in_tmp / "logs")]  # and the first did
    assert any(p.parent == root and "learning_curve" in p.name for p in ours)
    assert done.stdout.count("learning curve:") == 1
    assert done.stdout.count("of train, m=") == 2
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["size_0.5", "size_1"]
    assert (root / "learning_curve.png").is_file()
    points = json.loads((root / "learning_curve.json").read_text())["points"]
    assert [p["m"] for p in points] == [540, 1079]  # half, then all of the 1,079 train images
    for point in points:  # each point is its size's one run folder, scored by both processes
        (run_dir,) = (Path(point["run_dir"]).parent).iterdir()
        splits = json.loads((in_tmp / run_dir / "metrics.json").read_text())["splits"]
        assert splits["train"]["n"] == point["m"]
        assert splits["train"]["error"] == point["train_error"]
        assert splits["dev"]["error"] == point["dev_error"]


@pytest.mark.slow
def test_ddp_suspects_of_a_ddp_run_print_once_and_write_one_ranking(in_tmp, tiny_recipe):
    """`suspects` refits a run's own config.yaml, so a run trained with DDP refits with DDP;
    before the fix both processes printed every fold and wrote the CSV and report section."""
    from mlstrategy.cli import main

    assert main(["run", str(tiny_recipe)]) == 0
    (run_dir,) = _folders(in_tmp, "tiny")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["trainer"].update(strategy="ddp", devices=2, accelerator="cpu")  # as a DDP run saves
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    env, writes = _watching_writes(in_tmp)
    done = launch([str(EXE), "suspects", str(run_dir), "--folds=2"], in_tmp, env)
    assert _written(writes, 1, in_tmp) == []  # the second process wrote nothing
    assert any("suspect_labels" in p for p in _written(writes, 0, run_dir))
    assert done.stdout.count("fold 1/2: fitted on") == 1
    assert done.stdout.count("fold 2/2: fitted on") == 1
    assert done.stdout.count("labels ranked into") == 1
    rows = (run_dir / "suspect_labels.csv").read_text().splitlines()[1:]
    splits = json.loads((run_dir / "metrics.json").read_text())["splits"]
    assert len(rows) == splits["train"]["n"] + splits["dev"]["n"]  # each example ranked once
    assert (run_dir / "report.md").read_text().count("## Suspect labels") == 1


RANKS_SCRIPT = """\
import sys
from pathlib import Path

import torch

from mlstrategy.runs.lightning_cli import build_run

out = Path(sys.argv[1])
ddp = ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu"]
for i, configs in enumerate(sys.argv[2:]):  # one fit after another, as in a study
    cli = build_run([Path(c) for c in configs.split(",")], ddp, logs_dir=out / "logs")
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, weights_only=True)
    state = {k: v.cpu() for k, v in cli.model.state_dict().items()}
    checkpoints = cli.trainer.checkpoint_callback
    paths = {"best": checkpoints.best_model_path, "last": checkpoints.last_model_path}
    torch.save({"state": state, **paths}, out / f"fit{i}_rank{cli.trainer.global_rank}.pt")
"""
GRADUAL = {  # on top of the study's transfer run: both blocks unfrozen by epoch 2, no stopping
    "model": {"init_args": {"strategy": "gradual", "unfreeze_every": 1}},
    "trainer": {"max_epochs": 3, "callbacks": []},
}


def _load(path: Path | str) -> dict[str, Any]:
    return torch.load(path, weights_only=True)


def _assert_state(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


@pytest.mark.slow
def test_ddp_every_rank_ends_with_the_same_weights_early_stopping_and_gradual(in_tmp):
    """Two fits in one launch: a frozen transfer with early stopping (every rank restores the
    best checkpoint's state; the frozen backbone never moves), then gradual unfreezing (the
    blocks it unfreezes mid-fit are outside DDP's reduction: before the fix each rank trained
    its own copy of them)."""
    study = _study(in_tmp)
    (in_tmp / "gradual.yaml").write_text(yaml.safe_dump(GRADUAL))
    fits = [
        f"{study / 'a_transfer.yaml'}",  # the folder's _base.yaml comes first, as in `run`
        f"{study / 'a_transfer.yaml'},{in_tmp / 'gradual.yaml'}",
    ]
    script = in_tmp / "ranks.py"
    script.write_text(RANKS_SCRIPT)
    done = launch([sys.executable, str(script), str(in_tmp), *fits], in_tmp)
    source = _backbone(torch.load(in_tmp / "source.ckpt", weights_only=True)["state_dict"])

    stopped = [_load(in_tmp / f"fit0_rank{r}.pt") for r in (0, 1)]
    assert stopped[0]["best"] == stopped[1]["best"]
    best = _load(stopped[0]["best"])
    # It stopped early, PATIENCE epochs of training after the best: the restore undid them.
    assert best["epoch"] + PATIENCE + 1 < MAX_EPOCHS
    for rank in stopped:  # the best checkpoint's state, batch-norm statistics too, on each rank
        assert rank["state"].keys() == best["state_dict"].keys()
        _assert_state(rank["state"], best["state_dict"])
        _assert_state(rank["state"], source)  # and the frozen backbone never moved

    gradual = [_load(in_tmp / f"fit1_rank{r}.pt") for r in (0, 1)]
    last = _load(gradual[0]["last"])["state_dict"]
    assert "unfroze backbone block 0" in done.stdout + done.stderr
    for rank in gradual:  # rank 0's last checkpoint is what every rank holds
        _assert_state(rank["state"], last)
    for key in ("net.features.0.weight", "net.features.4.weight"):  # both blocks trained
        assert not torch.equal(last[key], source[key]), key
