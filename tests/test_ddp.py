"""Distributed runs on the CPU (gloo, 2 processes), launched as users launch them: the console
script with ``--trainer.strategy=ddp`` (Lightning starts the second process), and two
``torchrun`` "nodes" on 127.0.0.1. One run folder, one printed report, every example scored
once, a resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import write_recipe
from mlstrategy.evaluation.scoring import evaluate_splits
from mlstrategy.runs.lightning_cli import build_run

EXE = Path(sys.executable).with_name("mlstrategy")
SOFTMAX = {
    "class_path": "mlstrategy.models.SoftmaxRegression",
    "init_args": {"optimizer": "adam", "learning_rate": 0.01},
}
DIGITS = {  # 1,797 images: train 1,079 (odd, so the two processes' shares differ), dev, test 359
    "class_path": "mlstrategy.data.ArrayDataModule",
    "init_args": {
        "source": {"class_path": "mlstrategy.data.Digits", "init_args": {"flatten": True}},
        "dev_fraction": 0.2,
        "test_fraction": 0.2,
        "batch_size": 64,
    },
}
DDP = ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _folders(root: Path, name: str) -> list[Path]:
    return sorted(p for p in (root / "logs" / name).iterdir() if p.is_dir())


def launch(argv: list[str], cwd: Path, env: dict[str, str] = ENV) -> subprocess.CompletedProcess:
    """Run ``argv`` (a console script and its arguments) to the end, its output captured; it
    must exit 0 (both processes' stderr is shown otherwise)."""
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_ddp_run_killed_and_resumed_leaves_one_folder_and_one_process_scores(in_tmp):
    recipe = write_recipe(in_tmp / "ddp.yaml", SOFTMAX, DIGITS, {"max_epochs": 12})
    killed = subprocess.Popen(
        [str(EXE), "run", str(recipe), *DDP],
        cwd=in_tmp,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: both ranks are killed at once
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(in_tmp.glob("logs/ddp/*/checkpoints/last.ckpt")):
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    (run_dir,) = _folders(in_tmp, "ddp")  # one folder, from the first moment
    assert not (run_dir / "metrics.json").exists()
    last = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] < 11  # killed part-way through

    resumed = launch([str(EXE), "run", str(recipe), *DDP, "--resume", str(run_dir)], in_tmp)
    assert resumed.stdout.count("run folder:") == 1  # the report, printed by rank 0 alone
    assert _folders(in_tmp, "ddp") == [run_dir]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 12

    # The same checkpoint scored by one process: every example counted exactly once.
    cli = build_run([recipe], [], logs_dir=in_tmp / "single")
    alone = evaluate_splits(cli.trainer, cli.model, cli.datamodule, metrics["best_checkpoint"])
    for split, row in metrics["splits"].items():
        matrix = row["confusion_matrix"]
        assert sum(map(sum, matrix)) == row["n"] == alone[split]["n"]
        assert matrix == alone[split]["confusion_matrix"], split
        assert row["error"] == pytest.approx(alone[split]["error"], abs=1e-7)
        assert row["loss"] == pytest.approx(alone[split]["loss"], rel=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_torchrun_nodes_write_one_run_folder(in_tmp):
    recipe = write_recipe(in_tmp / "nodes.yaml", SOFTMAX, DIGITS, {"max_epochs": 2})
    torchrun = Path(sys.executable).with_name("torchrun")
    port = _free_port()
    nodes = [
        subprocess.Popen(
            [
                str(torchrun),
                "--nnodes=2",
                "--nproc-per-node=1",
                f"--node-rank={rank}",
                "--master-addr=127.0.0.1",
                f"--master-port={port}",
                str(EXE),
                "run",
                str(recipe),
                "--trainer.strategy=ddp",
                "--trainer.num_nodes=2",
                "--trainer.devices=1",
                "--trainer.accelerator=cpu",
            ],
            cwd=in_tmp,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    (run_dir,) = _folders(in_tmp, "nodes")
    assert (run_dir / "metrics.json").is_file()
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert "".join(outputs).count("run folder:") == 1
