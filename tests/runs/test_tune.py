"""`mlstrategy tune`: one tiny study run once, read by several tests; continue, refine, rerun."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from mlstrategy.cli import main
from mlstrategy.run_folder import load_metrics
from mlstrategy.runs.run import run_recipe
from mlstrategy.runs.tune import continue_study, refine, tune
from mlstrategy.runs.tune_storage import open_storage

# A 4-unit net on breast cancer, 2 epochs a trial. The learning rate 1e30 turns the cost NaN:
# that trial must be recorded failed while the study goes on. With seed 16 the trials draw
# 0.01, 1e30, 0.1 (then 0.1 for a fourth, 0.01 for a fifth).
RECIPE = {
    "model": {
        "class_path": "mlstrategy.models.DeepNet",
        "init_args": {"layer_dims": [4], "optimizer": "adam", "learning_rate": 0.01},
    },
    "data": {
        "class_path": "mlstrategy.data.ArrayDataModule",
        "init_args": {"source": {"class_path": "mlstrategy.data.BreastCancer"}, "batch_size": 64},
    },
    "trainer": {"max_epochs": 2},
    "evaluation": {"optimize": "dev/error", "satisfy": ["dev/recall>=0.5"], "latency_repeats": 3},
    "search": {
        "model.init_args.learning_rate": {"choices": [0.01, 0.1, 1.0e30]},
        "model.init_args.l2_lambda": {"low": 0.01, "high": 10.0, "log": True},
    },
}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("tune")
    before = Path.cwd()
    os.chdir(root)
    try:
        recipe = root / "small.yaml"
        recipe.write_text(yaml.safe_dump(RECIPE))
        result = tune(recipe, trials=3, seed=16)
        yield root, recipe, result
    finally:
        os.chdir(before)


def _trial_runs(study_dir: Path) -> list[Path]:
    return sorted(p.parent for p in study_dir.glob("trial_*/*/*/metrics.json"))


@pytest.mark.slow
def test_the_study_folder_holds_storage_trial_runs_report_figures_and_best_recipe(study):
    _, _, result = study
    d = result.study_dir
    for name in (
        "study.db",
        "study.json",
        "report.md",
        "small_best.yaml",
        "test.json",
        "optimization_history.png",
        "params_vs_dev.png",
    ):
        assert (d / name).is_file(), name
    assert (d / "optimization_history.png").read_bytes()[:4] == b"\x89PNG"
    assert [r.state for r in result.records] == ["complete", "failed", "complete"]
    assert "NonFiniteError" in (result.records[1].error or "")
    assert len(_trial_runs(d)) == 2  # two finished runs; the NaN one is marked FAILED
    assert list(d.glob("trial_001/*/*/FAILED"))
    report = (d / "report.md").read_text()
    assert "![optimization history](optimization_history.png)" in report
    assert "| trial 0 |" in report and "| trial 2 |" in report


@pytest.mark.slow
def test_the_chosen_trial_is_the_lowest_dev_error_among_the_trials_runs(study):
    _, _, result = study
    dev = {
        Path(r).name: load_metrics(r)["splits"]["dev"]["error"]
        for r in _trial_runs(result.study_dir)
    }
    best_dir = Path(result.best.run_dir)
    assert dev[best_dir.name] == min(dev.values()) == pytest.approx(result.best.value)
    # No trial records a test score, in the storage or in its run folder.
    stored = optuna.load_study(study_name="small", storage=open_storage(result.setup.storage))
    assert not any(
        k.startswith("test/") for t in stored.trials for k in t.user_attrs.get("metrics", {})
    )


@pytest.mark.slow
def test_no_trial_is_scored_on_test_its_run_folder_holds_train_and_dev_only(study):
    _, _, result = study
    for run in _trial_runs(result.study_dir):
        assert list(load_metrics(run)["splits"]) == ["train", "dev"], run
        diagnosis = json.loads((run / "diagnosis.json").read_text())
        assert diagnosis["test_error"] is None and diagnosis["dev_overfitting"] is None
        tags = {
            v.tag
            for events in run.glob("events.out.tfevents.*")
            for event in EventFileLoader(str(events)).Load()
            for v in event.summary.value
        }
        assert tags and not any("test" in t for t in tags), run


@pytest.mark.slow
def test_the_study_scores_test_once_for_the_chosen_trial_as_its_best_checkpoint_scores(study):
    root, _, result = study
    from sklearn.metrics import accuracy_score, log_loss

    from mlstrategy.data import ArrayDataModule, BreastCancer
    from mlstrategy.models import DeepNet

    best_dir = root / result.best.run_dir
    checkpoint = best_dir / "checkpoints" / "best.ckpt"
    model = DeepNet.load_from_checkpoint(checkpoint, weights_only=True).eval()
    x, y = ArrayDataModule(BreastCancer(), batch_size=64).prepare()["test"]  # the recipe's data
    with torch.no_grad():
        proba = model.predict_proba(model(x)).numpy()
    assert result.test["n"] == len(y)
    assert result.test["error"] == pytest.approx(1 - accuracy_score(y, proba.argmax(1)), abs=1e-6)
    assert result.test["loss"] == pytest.approx(log_loss(y, proba, labels=[0, 1]), rel=1e-4)
    stored = json.loads((result.study_dir / "test.json").read_text())
    assert stored["trial"] == result.best.name and stored["run_dir"] == result.best.run_dir
    assert stored["test"]["error"] == result.test["error"]
    assert stored["checkpoint"].endswith("best.ckpt")
    report = (result.study_dir / "report.md").read_text()
    assert "Test (scored once, for this trial only; never used to choose)" in report


def _dev_error(run: Path) -> float:
    return load_metrics(run)["splits"]["dev"]["error"]


@pytest.mark.slow
def test_hparams_has_one_row_per_trial_with_its_sampled_values_and_no_hp_metric(study):
    _, _, result = study
    rows = sorted((result.study_dir / "hparams").iterdir())
    assert [r.name for r in rows] == [f"stage1_trial_{n:03d}" for n in range(3)]
    tags: set[str] = set()
    for events in result.study_dir.rglob("events.out.tfevents.*"):
        for event in EventFileLoader(str(events)).Load():
            tags |= {v.tag for v in event.summary.value}
    assert "hp_metric" not in tags
    assert "tune/dev/error" in tags and "_hparams_/session_start_info" in tags


@pytest.mark.slow
def test_running_again_continues_the_study_and_test_scores_never_change_the_choice(
    study, monkeypatch
):
    _, recipe, first = study
    again = tune(recipe, trials=4, seed=16)
    assert [r.number for r in again.records] == [0, 1, 2, 3]
    assert [r.values for r in again.records[:3]] == [r.values for r in first.records]
    assert [r.value for r in again.records[:3]] == [r.value for r in first.records]
    # Test rows that would choose another trial in every trial's metrics.json, and the stored
    # test score of the chosen trial changed by hand: the choice stays, and a rerun reads the
    # stored score rather than scoring test again.
    saved = {}
    worst_first = sorted(_trial_runs(first.study_dir), key=lambda r: -_dev_error(r))
    for rank, run in enumerate(worst_first):
        path = run / "metrics.json"
        saved[path] = path.read_text()
        metrics = json.loads(saved[path])
        metrics["splits"]["test"] = {"error": 0.01 * rank, "f1": 1 - 0.01 * rank}
        path.write_text(json.dumps(metrics))
    test_file = first.study_dir / "test.json"
    saved[test_file] = test_file.read_text()
    perturbed = json.loads(saved[test_file])
    perturbed["test"]["error"] = 0.5
    test_file.write_text(json.dumps(perturbed))

    def never(*args):
        raise AssertionError("the test split was scored again")

    monkeypatch.setattr("mlstrategy.runs.tune_test.score_test", never)
    try:
        same = continue_study(first.study_dir, trials=4)
    finally:
        for path, text in saved.items():
            path.write_text(text)
    assert len(same.records) == 4  # the budget is reached: nothing more runs
    assert same.best.name == again.best.name
    assert same.test["error"] == 0.5  # read back from test.json, not scored again


@pytest.mark.slow
def test_refine_narrows_around_the_best_trials_records_its_parent_and_reports_both(study):
    _, _, first = study
    child = refine(first.study_dir, trials=1, top=2)
    setup = json.loads((child.study_dir / "study.json").read_text())
    assert setup["parent"] == str(first.study_dir) and setup["stage"] == 2
    l2 = setup["search"]["model.init_args.l2_lambda"]
    used = [r.values["model.init_args.l2_lambda"] for r in first.records if r.state == "complete"]
    assert l2["log"] is True and 0.01 <= l2["low"] <= min(used) and max(used) <= l2["high"] <= 10
    assert 1e30 not in setup["search"]["model.init_args.learning_rate"]["choices"]
    assert len(child.parents) >= 3 and child.records[0].stage == 2
    report = (child.study_dir / "report.md").read_text()
    assert "refines" in report and "| 2:trial 0 |" in report
    assert child.best_recipe == child.study_dir / "small-refine_best.yaml"


@pytest.mark.slow
def test_each_studys_best_recipe_is_named_by_its_study(study):
    _, _, first = study
    assert first.best_recipe == first.study_dir / "small_best.yaml"
    assert not (first.study_dir / "best.yaml").exists()
    header = first.best_recipe.read_text().splitlines()[:3]
    assert any(f"mlstrategy run {first.best_recipe} trains it again" in h for h in header)


@pytest.mark.slow
def test_the_best_recipe_reproduces_the_chosen_trials_dev_scores(study, in_tmp):
    root, _, result = study
    rerun = run_recipe([root / result.best_recipe])
    # `mlstrategy run` names the folder by the file: each study's reruns apart from another's.
    assert rerun.run_dir.parent.name == "small_best"
    chosen = load_metrics(root / result.best.run_dir)["splits"]["dev"]
    assert rerun.splits["dev"]["error"] == chosen["error"]
    assert rerun.splits["dev"]["loss"] == pytest.approx(chosen["loss"], rel=1e-6)
    assert "search" not in yaml.safe_load((root / result.best_recipe).read_text())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"search": {"model.init_args.lerning_rate": {"low": 0.1, "high": 1.0}}},
            "closest real key is 'model.init_args.learning_rate'",
        ),
        (
            {"search": {"model.init_args.learning_rate": {"low": 0.0, "high": 1.0, "log": True}}},
            "log scale needs low > 0",
        ),
        ({"evaluation": {"optimize": "test/error"}}, "dev set only"),
    ],
)
def test_bad_input_gets_exit_2_and_one_paragraph(in_tmp, capsys, change, message):
    recipe = in_tmp / "bad.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, **change}))
    assert main(["tune", str(recipe), "--trials", "1"]) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert not (in_tmp / "logs" / "tune").exists() or not any(
        (in_tmp / "logs/tune").rglob("trial_*")
    )


def test_an_unknown_storage_scheme_gets_exit_2(in_tmp, capsys):
    recipe = in_tmp / "small.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    assert main(["tune", str(recipe), "--storage", "mongodb://x/y"]) == 2
    assert "unknown scheme 'mongodb'" in capsys.readouterr().err


def test_withholding_test_leaves_in_memory_data_and_image_folders_without_a_test_split(tmp_path):
    import io

    from rich.console import Console

    from mlstrategy.data import ArrayDataModule, BreastCancer, DigitImages, ImageFolderDataModule
    from mlstrategy.data.images import write_image_folder
    from mlstrategy.runs.tune_test import withhold_test

    arrays = ArrayDataModule(BreastCancer(), batch_size=None)
    root = write_image_folder(DigitImages(size=8, classes=[1, 2]).load(0), tmp_path, 10)
    images = ImageFolderDataModule(str(root), image_size=8, num_workers=0, test_fraction=0.2)
    for data in (arrays, images):
        assert "test" in data.split_names
        withhold_test()(data)
        assert data.split_names == ["train", "dev"]
    out = io.StringIO()
    withhold_test(Console(file=out, width=200))(object())  # keeps no splits: a note, no error
    assert "keeps no splits the tune can withhold test from" in out.getvalue()


@pytest.mark.slow
def test_a_tampered_search_space_in_study_json_is_vetted_before_anything_runs(
    study, tmp_path, capsys
):
    import shutil

    from mlstrategy.cli import main

    _, _, first = study
    copy = tmp_path / "tampered"
    shutil.copytree(first.study_dir, copy)
    setup = json.loads((copy / "study.json").read_text())
    setup["search"]["model.class_path"] = {"choices": ["plantedmod_tune.Net"]}
    (copy / "study.json").write_text(json.dumps(setup))
    (tmp_path / "plantedmod_tune.py").write_text("raise SystemExit('planted module imported')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert main(["tune", str(copy), "--trials", "5"]) == 2
    finally:
        sys.path.remove(str(tmp_path))
    err = capsys.readouterr().err
    # Refused by the vetting, before the recipe is parsed (not only by the parser's allowlist).
    assert "plantedmod_tune" in err and "refused before anything was imported" in err
    assert "plantedmod_tune" not in sys.modules


@pytest.mark.parametrize(
    "launch",
    [
        ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu"],
        ["--trainer.num_nodes=2", "--trainer.devices=1", "--trainer.accelerator=cpu"],
    ],
)
def test_a_trial_across_several_processes_is_refused_before_anything_is_written(
    in_tmp, capsys, launch
):
    """Under DDP every process ran its own Optuna loop: the second process's trials went into
    the same storage and the first trial's collectives mismatched (gloo aborted it)."""
    recipe = in_tmp / "small.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    assert main(["tune", str(recipe), "--trials", "2", *launch]) == 2
    err = capsys.readouterr().err
    assert "tune trains each trial in one process, and this one asks for 2" in err
    assert "one worker per GPU, all sharing one storage" in err
    assert "CUDA_VISIBLE_DEVICES=0 mlstrategy tune RECIPE --storage journal:" in err
    assert not (in_tmp / "logs").exists()


def test_one_process_a_trial_leaves_a_single_device_recipe_as_it_is():
    from mlstrategy.runs.tune_setup import one_process

    assert one_process({}) == ()
    assert one_process({"accelerator": "cpu", "devices": 1, "strategy": "ddp"}) == ()


def test_a_failed_trials_message_is_printed_as_written_brackets_and_all(in_tmp, capsys):
    """The trial line went through rich's markup: a message holding "[/x]" (a path, gloo's
    "[enforce fail at /...]") raised MarkupError and took the whole study down."""
    source = {"class_path": "mlstrategy.data.ArrayFile", "init_args": {"path": "a.csv"}}
    recipe = {
        **RECIPE,
        "data": {"class_path": "mlstrategy.data.ArrayDataModule", "init_args": {"source": source}},
        "search": {"data.init_args.source.init_args.path": {"choices": ["gone[/x].csv"]}},
    }
    path = in_tmp / "gone.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["tune", str(path), "--trials", "3"]) == 2
    captured = capsys.readouterr()
    out = " ".join(captured.out.split())  # rich wraps the lines at the terminal's width
    assert out.count("path=gone[/x].csv -> failed: ValueError: Data file 'gone[/x].csv'") == 3
    assert "The first 3 trials all failed, so the study stopped" in captured.err
    assert "Traceback" not in captured.err


def test_a_searched_placement_or_a_torchrun_launch_is_refused_before_anything_is_written(
    in_tmp, capsys, monkeypatch
):
    recipe = in_tmp / "small.yaml"
    searched = {**RECIPE, "search": {"trainer.devices": {"choices": [1, 2]}}}
    recipe.write_text(yaml.safe_dump(searched))
    assert main(["tune", str(recipe), "--trials", "2"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "the search cannot sample trainer.devices: remove it from search:" in err

    recipe.write_text(yaml.safe_dump(RECIPE))
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun --nproc-per-node=2 sets it
    monkeypatch.setenv("RANK", "1")
    assert main(["tune", str(recipe), "--trials", "2"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "it was launched as one of 2 (WORLD_SIZE=2" in err and "one worker per GPU" in err
    assert not (in_tmp / "logs").exists()


def test_a_string_choice_a_str_parameter_would_read_otherwise_is_refused_naming_it(in_tmp, capsys):
    """ "null" goes quoted (YAML would read None), and a str parameter keeps the quotes: the
    trials would have looked for the file '"null"'."""
    source = {"class_path": "mlstrategy.data.ArrayFile", "init_args": {"path": "a.csv"}}
    recipe = {
        **RECIPE,
        "data": {"class_path": "mlstrategy.data.ArrayDataModule", "init_args": {"source": source}},
        "search": {"data.init_args.source.init_args.path": {"choices": ["b.csv", "null"]}},
    }
    path = in_tmp / "quoted.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["tune", str(path), "--trials", "2"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "search: data.init_args.source.init_args.path choice 'null' reaches the recipe as " in err
    )
    assert "Choose a value YAML reads as text" in err
    assert not (in_tmp / "logs").exists()
