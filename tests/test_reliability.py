"""Reliability end to end: exact resume after SIGKILL, determinism, NaN stops, refusals."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import run_cli_subprocess, write_recipe
from mlstrategy.cli import main

MLP_DROPOUT = {
    "class_path": "mlstrategy.models.DeepNet",
    # Dropout draws from the global torch RNG: resuming must restore it to match exactly.
    "init_args": {"layer_dims": [32], "keep_prob": 0.8, "optimizer": "adam", "learning_rate": 0.01},
}
DIGITS = {
    "class_path": "mlstrategy.data.ArrayDataModule",
    "init_args": {"source": {"class_path": "mlstrategy.data.Digits"}, "batch_size": 64},
}
TIMED = {"fit_seconds", "latency_ms", "run_dir", "best_checkpoint", "latency_device"}


def _metrics(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in TIMED}


def _state(path: Path) -> tuple[dict, list]:
    ckpt = torch.load(path, weights_only=True)
    return ckpt["state_dict"], ckpt["optimizer_states"]


def _assert_same_weights(a: Path, b: Path) -> None:
    (sa, oa), (sb, ob) = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    for ga, gb in zip(oa[0]["state"].values(), ob[0]["state"].values(), strict=True):
        assert all(torch.equal(ga[k], gb[k]) for k in ga)


def _runs(root: Path, name: str) -> list[Path]:
    return sorted(p for p in (root / "logs" / name).iterdir() if p.is_dir())


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(in_tmp):
    recipe = write_recipe(
        in_tmp / "resume.yaml",
        MLP_DROPOUT,
        DIGITS,
        {"max_epochs": 25, "enable_progress_bar": False},
    )
    assert main(["run", str(recipe)]) == 0
    (reference,) = _runs(in_tmp, "resume")

    exe = Path(sys.executable).with_name("mlstrategy")
    rng = random.Random(1)
    for attempt in range(4):
        proc = subprocess.Popen(
            [str(exe), "run", str(recipe)],
            cwd=in_tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while (
            time.monotonic() < deadline
            and not list(in_tmp.glob("logs/resume/*/checkpoints/last.ckpt"))[1:]
        ):
            time.sleep(0.02)  # until the killed run has written its first checkpoint
        time.sleep(rng.uniform(0.0, 0.4 / (attempt + 1)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = [r for r in _runs(in_tmp, "resume") if r != reference][-1]
        if not (killed / "metrics.json").exists():
            break
    assert proc.returncode == -signal.SIGKILL and not (killed / "metrics.json").exists()
    epochs_done = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    assert epochs_done < 24  # killed part-way through

    assert main(["run", str(recipe), "--resume", str(killed)]) == 0
    _assert_same_weights(
        reference / "checkpoints" / "last.ckpt", killed / "checkpoints" / "last.ckpt"
    )
    _assert_same_weights(
        reference / "checkpoints" / "best.ckpt", killed / "checkpoints" / "best.ckpt"
    )
    assert _metrics(killed) == _metrics(reference)


def test_resume_without_a_checkpoint_is_an_error(tiny_recipe, capsys):
    code = main(["run", str(tiny_recipe), "--resume"])
    assert code == 2
    assert "no run of 'tiny'" in capsys.readouterr().err
    (tiny_recipe.parent / "logs" / "tiny" / "empty").mkdir(parents=True)
    assert main(["run", str(tiny_recipe), "--resume", "logs/tiny/empty"]) == 2
    assert "has no checkpoints/last.ckpt" in capsys.readouterr().err


def test_two_seeded_runs_are_identical(in_tmp):
    recipe = write_recipe(in_tmp / "twice.yaml", MLP_DROPOUT, DIGITS, {"max_epochs": 2})
    assert main(["run", str(recipe)]) == 0
    assert main(["run", str(recipe)]) == 0
    first, second = _runs(in_tmp, "twice")
    assert _metrics(first) == _metrics(second)
    _assert_same_weights(first / "checkpoints" / "best.ckpt", second / "checkpoints" / "best.ckpt")


@pytest.mark.slow
def test_two_runs_started_at_once_get_separate_folders(tiny_recipe):
    exe = Path(sys.executable).with_name("mlstrategy")
    procs = [
        subprocess.Popen(
            [str(exe), "run", str(tiny_recipe)], cwd=tiny_recipe.parent, stdout=subprocess.DEVNULL
        )
        for _ in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    runs = _runs(tiny_recipe.parent, "tiny")
    assert len(runs) == 2
    assert all(
        (r / "metrics.json").is_file() and (r / "checkpoints" / "best.ckpt").is_file() for r in runs
    )


def test_absurd_learning_rate_stops_with_the_nan_message(in_tmp):
    recipe = write_recipe(
        in_tmp / "boom.yaml",
        {
            "class_path": "mlstrategy.models.LogisticRegression",
            "init_args": {"optimizer": "gd", "learning_rate": 1e38},
        },
        {
            "class_path": "mlstrategy.data.ArrayDataModule",
            "init_args": {
                "source": {"class_path": "mlstrategy.data.BreastCancer"},
                "normalize": False,
            },
        },
        {"max_epochs": 20},
    )
    result = run_cli_subprocess("run", str(recipe), cwd=in_tmp)
    assert result.returncode == 1
    assert "training stopped" in result.stderr and "learning rate too high" in result.stderr
    assert "Traceback" not in result.stderr
    (run_dir,) = _runs(in_tmp, "boom")
    assert (run_dir / "FAILED").is_file() and not (run_dir / "metrics.json").exists()
    for ckpt in run_dir.glob("checkpoints/*.ckpt"):
        assert all(torch.isfinite(v).all() for v in _state(ckpt)[0].values())


def test_foreign_class_path_is_refused_before_import(in_tmp, capsys, monkeypatch):
    marker = in_tmp / "imported"
    (in_tmp / "strangerpkg.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Net: ...\n")
    monkeypatch.syspath_prepend(str(in_tmp))
    recipe = write_recipe(in_tmp / "evil.yaml", {"class_path": "strangerpkg.Net"}, DIGITS)
    assert main(["run", str(recipe)]) == 2
    assert "--allow-module strangerpkg" in capsys.readouterr().err
    assert not marker.exists()
    assert main(["fit", "--config", str(recipe)]) == 2
    assert not marker.exists()
