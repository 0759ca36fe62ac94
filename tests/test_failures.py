"""Failures a user meets at run time get one clear line: an unusable logs folder, a full disk,
Ctrl-C and SIGTERM (with the exact --resume command), and failures before training starts."""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli_subprocess, write_recipe
from mlstrategy.cli import main
from mlstrategy.runs.recipes import recipe_configs
from mlstrategy.runs.run import run_recipe

EXE = Path(sys.executable).with_name("mlstrategy")


def _finished_earlier(in_tmp: Path, tiny_recipe: Path) -> Path:
    """A finished run that a later failure must not touch."""
    assert main(["run", str(tiny_recipe)]) == 0
    (metrics,) = in_tmp.glob("logs/tiny/*/metrics.json")
    return metrics


def test_a_file_where_the_logs_folder_should_be_is_one_line_exit_1(in_tmp, tiny_recipe):
    (in_tmp / "logs").write_text("not a folder")
    out = run_cli_subprocess("run", str(tiny_recipe), cwd=in_tmp)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr + out.stdout
    line = next(ln for ln in out.stderr.splitlines() if ln.startswith("error:"))
    assert str(in_tmp / "logs") in line and "Not a directory" in line
    assert "move or remove it" in line
    assert (in_tmp / "logs").read_text() == "not a folder"  # nothing lost


def _limited(limit_bytes: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return apply


def test_a_write_that_does_not_fit_marks_the_run_failed_and_names_the_file(in_tmp, tiny_recipe):
    earlier = _finished_earlier(in_tmp, tiny_recipe)
    before = earlier.read_bytes()
    out = subprocess.run(
        [str(EXE), "run", str(tiny_recipe)],
        cwd=in_tmp,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limited(12_000),  # a checkpoint of 31 weights fits; metrics.json does not
    )
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    line = next(ln for ln in out.stderr.splitlines() if ln.startswith("error:"))
    assert "File too large" in line and "ulimit -f" in line
    failed = [p for p in in_tmp.glob("logs/tiny/*") if (p / "FAILED").exists()]
    assert len(failed) == 1
    (run,) = failed
    assert not (run / "metrics.json").exists()  # nothing half-written looks finished
    assert f"logs/tiny/{run.name}/" in line  # the file that did not fit, in the failed run
    assert earlier.read_bytes() == before


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    return done.returncode == 0


def test_a_full_disk_is_one_line_with_the_path_and_the_fix(in_tmp, tiny_recipe):
    if not _mount_tmpfs(in_tmp / "logs", "60k"):
        pytest.skip("needs root to mount a small tmpfs (the ulimit test covers the same path)")
    try:
        out = run_cli_subprocess("run", str(tiny_recipe), cwd=in_tmp)
    finally:
        subprocess.run(["umount", str(in_tmp / "logs")], check=True)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr + out.stdout
    line = next(ln for ln in out.stderr.splitlines() if ln.startswith("error:"))
    assert "No space left on device" in line and "free some space" in line
    assert str(in_tmp / "logs" / "tiny") in line


def _sigint_as_in_a_terminal() -> None:
    """Ctrl-C as a user's run in a terminal gets it. A background job of a non-interactive
    shell (``make test > log &``) inherits SIGINT ignored, and Python, like any program, keeps
    ignoring it: the run would never see the signal and would finish with exit 0."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_says_so_and_gives_the_exact_resume_command(in_tmp, signum):
    recipe = write_recipe(
        in_tmp / "long.yaml",
        {
            "class_path": "mlstrategy.models.LogisticRegression",
            "init_args": {"optimizer": "gd", "learning_rate": 0.5},
        },
        {
            "class_path": "mlstrategy.data.ArrayDataModule",
            "init_args": {"source": {"class_path": "mlstrategy.data.BreastCancer"}},
        },
        {"max_epochs": 60},
    )
    override = "--model.init_args.learning_rate=0.25"
    proc = subprocess.Popen(
        [str(EXE), "run", str(recipe), override],
        cwd=in_tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_as_in_a_terminal,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(in_tmp.glob("logs/long/*/checkpoints/*.ckpt")):
        time.sleep(0.02)
    time.sleep(0.2)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in stdout + stderr
    (run,) = in_tmp.glob("logs/long/*")
    failed = (run / "FAILED").read_text()
    assert failed.startswith("interrupted")
    command = failed.split("continue exactly where it stopped: ", 1)[1].strip()
    expected = ["mlstrategy", "run", str(recipe), override, "--resume", f"logs/long/{run.name}"]
    assert shlex.split(command) == expected
    assert command in " ".join(stdout.split())  # the console says the same
    assert not (run / "metrics.json").exists()
    # The printed command works: it finishes the run in the same folder.
    assert main(shlex.split(command)[1:]) == 0
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 60
    assert not (run / "FAILED").exists()


def test_a_failure_before_training_leaves_no_run_folder(in_tmp, tiny_recipe):
    def refuse(datamodule: object) -> None:
        raise ValueError("the data module is not what this step needs")

    with pytest.raises(ValueError, match="not what this step needs"):
        run_recipe(recipe_configs(tiny_recipe)[0], before_fit=refuse)
    assert not [p for p in in_tmp.glob("logs/tiny/*") if p.is_dir()]


def test_a_failure_after_writing_marks_the_folder(in_tmp, tiny_recipe):
    out = run_cli_subprocess("lr-find", str(tiny_recipe), "--min-lr", "0", cwd=in_tmp)
    assert out.returncode == 2 and "need 0 < min_lr < max_lr" in out.stderr
    assert not [p for p in in_tmp.glob("logs/lr-find/tiny/*") if p.is_dir()]


def test_resume_onto_a_damaged_or_foreign_checkpoint_is_one_line_exit_2(in_tmp, tiny_recipe):
    metrics = _finished_earlier(in_tmp, tiny_recipe)
    run = metrics.parent
    metrics.unlink()  # a run that never finished: the kind --resume continues
    last = run / "checkpoints" / "last.ckpt"
    whole = last.read_bytes()
    last.write_bytes(whole[: len(whole) // 2])
    out = run_cli_subprocess("run", str(tiny_recipe), "--resume", str(run), cwd=in_tmp)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr + out.stdout and "weights_only" not in out.stderr
    assert "damaged or truncated" in out.stderr
    assert f"logs/tiny/{run.name}/checkpoints/last.ckpt" in out.stderr
    # Another architecture's checkpoint: both models are named, nothing is trained over it.
    softmax = write_recipe(
        in_tmp / "other.yaml",
        {"class_path": "mlstrategy.models.SoftmaxRegression"},
        {
            "class_path": "mlstrategy.data.ArrayDataModule",
            "init_args": {"source": {"class_path": "mlstrategy.data.Digits"}},
        },
    )
    assert main(["run", str(softmax)]) == 0
    (foreign,) = in_tmp.glob("logs/other/*/checkpoints/last.ckpt")
    last.write_bytes(foreign.read_bytes())
    out = run_cli_subprocess("run", str(tiny_recipe), "--resume", str(run), cwd=in_tmp)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "SoftmaxRegression" in out.stderr and "LogisticRegression" in out.stderr
    assert last.read_bytes() == foreign.read_bytes()  # refused before anything was written
