"""README claims that no other test checked: what a run prints and writes, how it writes it,
and the facts the README states about the project itself (tests/test_readme_claims.py keeps
each claim pointed at its tests)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO, TINY_RECIPE
from mlstrategy.cli import main

README = (REPO / "README.md").read_text()


def _recipe(path: Path, **data_args: object) -> Path:
    """The conftest's tiny recipe (logistic regression on breast cancer), 3 epochs."""
    tree = copy.deepcopy(TINY_RECIPE)
    tree["data"]["init_args"].update(data_args)
    tree["trainer"]["max_epochs"] = 3
    path.write_text(yaml.safe_dump(tree))
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One finished ``mlstrategy run`` of the tiny recipe with mini-batches of 64, recording
    its console output and every ``os.fsync`` / ``os.replace`` it made."""
    work = tmp_path_factory.mktemp("run").resolve()
    recipe = _recipe(work / "tiny.yaml", batch_size=64)
    calls: list[tuple[str, str]] = []
    real_replace, real_fsync = os.replace, os.fsync

    def replace(src, dst, *args, **kwargs):
        calls.append(("replace", str(Path(dst).resolve())))
        return real_replace(src, dst, *args, **kwargs)

    def fsync(fd):
        calls.append(("fsync", str(fd)))
        return real_fsync(fd)

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        mp.setenv("COLUMNS", "200")
        mp.setattr(os, "replace", replace)
        mp.setattr(os, "fsync", fsync)
        with contextlib.redirect_stdout(out):
            assert main(["run", str(recipe)]) == 0
    (run_dir,) = (p for p in (work / "logs" / "tiny").iterdir() if p.is_dir())
    return {
        "work": work,
        "recipe": recipe,
        "run_dir": run_dir,
        "out": out.getvalue(),
        "calls": calls,
    }


@pytest.mark.slow  # shares one ~2 s run
def test_run_prints_every_split_the_diagnosis_and_where_the_folder_and_report_are(tiny_run):
    out, run_dir = tiny_run["out"], tiny_run["run_dir"]
    for split in ("train", "dev", "test"):
        assert re.search(rf"│ {split}\s+│\s+\d+ │", out), split
    assert "The largest gap is" in out and "Remedies" in out
    rel = run_dir.relative_to(tiny_run["work"])
    assert f"run folder: {rel}" in out and f"report: {rel / 'report.md'}" in out
    assert out.index("accuracy") < out.index("The largest gap") < out.index("run folder:")


def _events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    return events


@pytest.mark.slow  # shares one ~2 s run
def test_scalars_put_train_and_dev_cost_on_one_chart(tiny_run):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    # Tag "cost" in two sub-runs of the run: the Scalars tab draws them as one chart.
    runs = EventMultiplexer().AddRunsFromDirectory(str(tiny_run["run_dir"])).Reload()
    with_cost = {r for r, tags in runs.Runs().items() if "cost" in tags["scalars"]}
    assert with_cost == {"train", "dev"}
    assert len(runs.Scalars("train", "cost")) == len(runs.Scalars("dev", "cost")) == 3


@pytest.mark.slow  # shares one ~2 s run
def test_tensorboard_logs_the_learning_rate_each_epoch_and_the_hyperparameters(tiny_run):
    events = _events(tiny_run["run_dir"])
    assert [e.value for e in events.Scalars("lr")] == [0.5, 0.5, 0.5]
    assert {"dev/error", "test/f1"} <= set(events.Tags()["scalars"])  # HParams' metrics
    hparams = (tiny_run["run_dir"] / "hparams.yaml").read_text()
    assert "learning_rate: 0.5" in hparams and "optimizer: gd" in hparams


@pytest.mark.slow  # shares one ~2 s run
def test_cost_train_is_the_epochs_mean_training_batch_cost(tiny_run):
    metrics = json.loads((tiny_run["run_dir"] / "metrics.json").read_text())
    first = metrics["cost_curve"][0]
    # 341 training examples in batches of 64: five full batches and one of 21.
    sizes = [64] * 5 + [21]
    steps = first["step_costs"]
    assert len(steps) == len(sizes)
    # Weights start at zero, so the first batch's cost is ln 2 exactly (sigmoid(0) = 1/2).
    assert steps[0] == pytest.approx(math.log(2), abs=1e-6)
    mean = sum(c * n for c, n in zip(steps, sizes, strict=True)) / sum(sizes)
    assert first["cost/train"] == pytest.approx(mean, rel=1e-6)
    # Not the after-training score of the train split, which metrics.json holds.
    last = metrics["cost_curve"][-1]["cost/train"]
    assert abs(last - metrics["splits"]["train"]["loss"]) > 1e-4


@pytest.mark.slow  # shares one ~2 s run
def test_best_checkpoint_is_the_lowest_dev_cost(tiny_run):
    run_dir = tiny_run["run_dir"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    dev = [p["cost/dev"] for p in metrics["cost_curve"]]
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True, map_location="cpu")
    (state,) = (v for k, v in best["callbacks"].items() if k.startswith("ModelCheckpoint"))
    assert state["monitor"] == "cost/dev"
    assert float(state["best_model_score"]) == pytest.approx(min(dev), rel=1e-6)
    assert best["epoch"] == dev.index(min(dev))


@pytest.mark.slow  # shares one ~2 s run
def test_metrics_json_is_written_last(tiny_run):
    run_dir = tiny_run["run_dir"]
    in_run = [Path(dst) for kind, dst in tiny_run["calls"] if kind == "replace"]
    in_run = [p for p in in_run if run_dir in p.parents]
    assert in_run[-1] == run_dir / "metrics.json"
    newest = max(
        (p for p in run_dir.rglob("*") if p.is_file() and not p.name.startswith("events.")),
        key=lambda p: p.stat().st_mtime_ns,
    )
    assert newest.stat().st_mtime_ns == (run_dir / "metrics.json").stat().st_mtime_ns


@pytest.mark.slow  # shares one ~2 s run
def test_checkpoints_metrics_diagnosis_and_report_are_fsynced_then_renamed(tiny_run):
    run_dir = tiny_run["run_dir"]
    synced, renamed_after_sync = False, {}
    for kind, target in tiny_run["calls"]:
        if kind == "fsync":
            synced = True
            continue
        path = Path(target)
        renamed_after_sync[path] = renamed_after_sync.get(path, True) and synced
        synced = False
    names = ["metrics.json", "diagnosis.json", "report.md"]
    for name in [*names, "checkpoints/best.ckpt", "checkpoints/last.ckpt"]:
        assert renamed_after_sync.get(run_dir / name) is True, name
    # No temporary file is left beside them.
    assert not [p for p in run_dir.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


@pytest.mark.slow
def test_fit_on_the_run_folders_config_repeats_the_run(tiny_run, monkeypatch):
    monkeypatch.chdir(tiny_run["work"])
    first = tiny_run["run_dir"]
    assert main(["fit", "--config", str(first / "config.yaml")]) == 0
    # Named after the config file: logs/config/<timestamp>/.
    (again,) = (
        p.parent.parent
        for p in (tiny_run["work"] / "logs" / "config").glob("*/checkpoints/last.ckpt")
    )
    for name in ("best.ckpt", "last.ckpt"):
        a, b = (
            torch.load(d / "checkpoints" / name, weights_only=True, map_location="cpu")
            for d in (first, again)
        )
        assert a["epoch"] == b["epoch"]
        for key, value in a["state_dict"].items():
            assert torch.equal(value, b["state_dict"][key]), (name, key)


# ------------------------------------------------------------------------- the command line
def test_the_readmes_bad_input_example_is_what_the_command_prints(in_tmp, capsys):
    (line,) = [ln for ln in README.splitlines() if ln.startswith("error: dev_fraction=1.5")]
    recipe = _recipe(in_tmp / "bad.yaml", dev_fraction=1.5)
    assert main(["run", str(recipe)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert line in err


def test_mlstrategy_debug_shows_the_traceback_instead(in_tmp, monkeypatch):
    recipe = _recipe(in_tmp / "bad.yaml", dev_fraction=1.5)
    monkeypatch.setenv("MLSTRATEGY_DEBUG", "1")
    with pytest.raises(ValueError, match=r"dev_fraction=1\.5 is outside"):
        main(["run", str(recipe)])


def test_help_documents_each_hyperparameter_from_its_docstring(capsys):
    assert main(["fit", "--model.help", "mlstrategy.models.LogisticRegression"]) == 0
    help_text = capsys.readouterr().out
    names = re.findall(r"--model\.(\w+)", help_text.split("\n\n")[0])
    assert {"optimizer", "learning_rate", "l2_lambda", "lr_decay", "compile"} <= set(names)
    for name in names:
        entry = re.search(rf"^  --model\.{name}\b[^\n]*\n?\s+(.*?)\(type:", help_text, re.M | re.S)
        assert entry and entry.group(1).strip(), f"--model.{name} has no description"
    # The words come from the docstring's Args entries.
    assert "Momentum and Adam's first-moment decay." in help_text


@pytest.mark.slow
def test_bf16_mixed_precision_runs_on_the_cpu(in_tmp):
    recipe = _recipe(in_tmp / "tiny.yaml")
    assert main(["run", str(recipe), "--trainer.precision=bf16-mixed"]) == 0
    (metrics,) = in_tmp.glob("logs/tiny/*/metrics.json")
    assert json.loads(metrics.read_text())["splits"]["test"]["accuracy"] > 0.85


# ------------------------------------------------------------------------------ no network
def test_every_built_in_data_set_is_made_without_the_network(monkeypatch):
    import socket

    from mlstrategy.data import MNIST1D, BreastCancer, DigitImages, Digits, Flower, Moons
    from mlstrategy.data.canvas import DigitCanvas
    from mlstrategy.data.scenes import StreetScenes

    def no_network(*args, **kwargs):
        raise AssertionError("a data set tried to open a network connection")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    sources = [
        BreastCancer(),
        Digits(),
        Moons(n_samples=50),
        Flower(n_samples=50),
        MNIST1D(num_samples=100),
        DigitImages(),
        DigitCanvas(n_train=20, n_test=20),
        StreetScenes(n_samples=20),
    ]
    for source in sources:
        arrays = source.load(0)
        assert len(arrays.x) > 0, type(source).__name__


# ---------------------------------------------------------------------- the project's facts
def test_python_310_or_newer_and_torch_is_not_pinned():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^requires-python = ">=3\.10"$', pyproject, re.M)
    (torch_req,) = re.findall(r'^\s+"(torch(?![\w-])[^"]*)"', pyproject, re.M)
    assert "==" not in torch_req and "<" not in torch_req


def test_the_recipes_the_readme_lists_are_shipped():
    (line,) = re.findall(r"Recipes shipped: (.+?)\n\n", README, flags=re.S)
    names = re.findall(r"`([^`]+)`", line)
    assert len(names) >= 8
    for name in names:
        path = REPO / "recipes" / name
        assert path.is_file() if name.endswith(".yaml") else any(path.rglob("*.yaml")), name
    # And every shipped recipe or folder is listed.
    shipped = {p.name + ("" if p.is_file() else "/") for p in (REPO / "recipes").iterdir()}
    assert shipped <= set(names), shipped - set(names)


def test_the_counts_in_the_reliability_section_are_the_tests_counts():
    sys.path.insert(0, str(REPO / "tests"))
    import test_bad_inputs
    import test_vetting

    places = re.search(r"plants a module in each of (\d+) places", README)
    battery = re.search(r"A battery of (\d+) bad inputs", README)
    assert places and battery
    assert int(places.group(1)) == len(test_vetting.PLACES)
    assert int(battery.group(1)) == len(test_bad_inputs.CASES)


def test_make_test_runs_one_torch_thread_and_make_lint_runs_ruff_and_mypy():
    makefile = (REPO / "Makefile").read_text()
    targets = dict(re.findall(r"^(\w+):[^\n]*\n((?:\t[^\n]*\n)+)", makefile, flags=re.M))
    assert "OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}" in targets["test"].replace("$$", "$")
    assert "pytest" in targets["test"]
    lint = targets["lint"]
    assert "ruff check" in lint and "ruff format --check" in lint and "mypy" in lint


def test_pytest_runs_the_docstring_examples_in_src():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^testpaths = \[[^]]*"src"', pyproject, re.M)
    assert re.search(r"^addopts = .*--doctest-modules", pyproject, re.M)


def test_git_keeps_only_gitkeep_under_logs():
    tracked = subprocess.run(
        ["git", "ls-files", "logs"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked == ["logs/.gitkeep"]
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "logs/some_recipe/20260101-000000/metrics.json"], cwd=REPO
    )
    assert ignored.returncode == 0


# ------------------------------------------------------------------------------ benchmarks
@pytest.mark.slow
def test_loop_overhead_fails_when_the_two_loops_final_costs_differ(monkeypatch):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import loop_overhead

    from mlstrategy.data import ArrayDataModule, Digits
    from mlstrategy.models import DeepNet

    dm = ArrayDataModule(Digits(), dev_fraction=0.1, batch_size=256, seed=0)

    def mlp():
        torch.manual_seed(0)
        return DeepNet((64,), 10, layer_dims=[8], optimizer="adam", learning_rate=0.01)

    row = loop_overhead.case("mlp", mlp, dm, epochs=1, repeats=1, validate=False)
    assert row[0] == "mlp" and row[4].endswith("x")  # same work: the costs agree
    real = loop_overhead.hand_loop
    monkeypatch.setattr(loop_overhead, "hand_loop", lambda *a, **k: (real(*a, **k)[0] + 1e-3, None))
    with pytest.raises(SystemExit, match="final costs differ"):
        loop_overhead.case("mlp", mlp, dm, epochs=1, repeats=1, validate=False)


# ------------------------------------------------------------------------ guards and recipes
def test_the_multitask_study_uses_16x16_scenes_with_30_percent_of_labels_hidden():
    base = yaml.safe_load((REPO / "recipes" / "multitask" / "_base.yaml").read_text())
    scenes = base["data"]["init_args"]["source"]["init_args"]
    assert scenes["image_size"] == 16 and scenes["missing_fraction"] == 0.3
