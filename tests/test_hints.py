"""Every command the toolkit prints as a next step works when copied and pasted.

Each test runs a verb on a tiny recipe, reads the hint from what it printed, and runs that
hint as printed (``mlstrategy ...`` through :func:`mlstrategy.cli.main`, ``tensorboard ...``
as the installed script).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml

from conftest import TINY_RECIPE
from mlstrategy.cli import TOP_HELP, main

pytestmark = pytest.mark.slow  # six tiny runs in all (3 epochs each), a few seconds each here


def _run(capsys, *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, out + err
    return out + err


def _flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines at the console's width


def _hint(text: str, after: str) -> list[str]:
    """The command printed after ``after`` on one line, as argv without ``mlstrategy``."""
    (line,) = [line for line in text.splitlines() if after in line]
    command = shlex.split(line.split(after, 1)[1])
    assert command[0] == "mlstrategy", line
    return command[1:]


def _run_dir(root: Path, recipe: str = "tiny") -> Path:
    (run_dir,) = sorted(root.glob(f"logs/{recipe}/*/metrics.json"))[-1:]
    return run_dir.parent


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, str]:
    """One finished run of the tiny recipe (3 epochs), shared: its folder and what it printed."""
    root = tmp_path_factory.mktemp("hints")
    recipe = {**TINY_RECIPE, "trainer": {**TINY_RECIPE["trainer"], "max_epochs": 3}}
    (root / "tiny.yaml").write_text(yaml.safe_dump(recipe))
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(out), redirect_stderr(out):
        patch.chdir(root)
        assert main(["run", "tiny.yaml"]) == 0
    return root, out.getvalue()


@pytest.fixture
def tiny_recipe(finished, monkeypatch) -> Path:
    """The shared run's recipe, in its folder (the working directory)."""
    monkeypatch.chdir(finished[0])
    return finished[0] / "tiny.yaml"


def test_the_diagnosis_notes_options_work_on_run_and_on_diagnose(finished, tiny_recipe, capsys):
    notes = _flat(finished[1])
    assert "Set evaluation.human_error, or add --human-error 0.01 to `mlstrategy run`." in notes
    assert "To measure mismatch add --data.init_args.train_dev_fraction=0.1." in notes
    first = _run_dir(tiny_recipe.parent)
    text = _flat(_run(capsys, "diagnose", str(first), "--human-error", "0.01"))
    assert "train" in text and "- human 1.00%" in text and "No human_error given" not in text

    args = ["--human-error", "0.02", "--data.init_args.train_dev_fraction=0.1"]
    text = _flat(_run(capsys, "run", str(tiny_recipe), *args))
    assert "No human_error given" not in text and "No train-dev split" not in text
    run_dir = _run_dir(tiny_recipe.parent)
    diagnosis = json.loads((run_dir / "diagnosis.json").read_text())
    splits = json.loads((run_dir / "metrics.json").read_text())["splits"]
    assert diagnosis["settings"]["human_error"] == 0.02
    assert diagnosis["avoidable_bias"] == pytest.approx(splits["train"]["error"] - 0.02)
    want = splits["dev"]["error"] - splits["train_dev"]["error"]
    assert diagnosis["data_mismatch"] == pytest.approx(want)


def test_the_run_summary_tensorboard_command_finds_the_runs_events(finished, tiny_recipe):
    (command,) = re.findall(r"tensorboard --logdir \S+", finished[1])
    exe = Path(sys.executable).with_name("tensorboard")
    # --inspect reads the event files the server would show, and exits.
    inspected = subprocess.run(
        [str(exe), *shlex.split(command)[1:], "--inspect"],
        cwd=tiny_recipe.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert inspected.returncode == 0, inspected.stderr
    assert "cost/step" in inspected.stdout and "dev/error" in inspected.stdout


def test_lr_find_use_it_command_runs_the_recipe_with_the_suggested_rate(tiny_recipe, capsys):
    text = _run(capsys, "lr-find", str(tiny_recipe), "--num-training", "20")
    command = _hint(text, "use it: ")
    rate = float(command[-1].split("=", 1)[1])
    _run(capsys, *command)
    config = yaml.safe_load((_run_dir(tiny_recipe.parent) / "config.yaml").read_text())
    assert config["model"]["init_args"]["learning_rate"] == rate


def test_errors_tags_command_runs_once_the_sheet_is_tagged(tiny_recipe, capsys):
    text = _run(capsys, "errors", str(_run_dir(tiny_recipe.parent)))
    command = _hint(text, "then: ")
    sheet = Path(command[-1])
    rows = list(csv.DictReader(sheet.open()))
    assert rows, "the tiny run makes no dev error to tag"
    for row in rows:
        row["tags"] = "borderline"
    with sheet.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert "borderline" in _run(capsys, *command)


def test_a_study_s_compare_again_command_compares_its_runs(tiny_recipe, capsys):
    study = tiny_recipe.parent / "study"
    study.mkdir()
    for name, rate in (("slow", 0.05), ("fast", 0.5)):
        recipe = yaml.safe_load(tiny_recipe.read_text())
        recipe["model"]["init_args"]["learning_rate"] = rate
        (study / f"{name}.yaml").write_text(yaml.safe_dump(recipe))
    text = _run(capsys, "run", str(study))
    command = _hint(text, "compare again: ")
    compared = _run(capsys, *command)
    assert "slow" in compared and "fast" in compared


def test_the_top_help_s_pointers_work(tiny_recipe, capsys):
    pointers = re.findall(r"\((mlstrategy [a-z-]+ (?:-h|--help))\)", TOP_HELP)
    assert len(pointers) >= 6
    for pointer in pointers:
        assert main(shlex.split(pointer)[1:]) == 0, pointer
    capsys.readouterr()
    text = _run(capsys, "fit", "--print_config", "--config", str(tiny_recipe))
    assert "max_epochs: 3" in text
    # `mlstrategy diagnose logs/quickstart`: a recipe's folder stands for its newest run.
    assert "diagnosis" in _run(capsys, "diagnose", "logs/tiny")
