"""`mlstrategy run` writes the diagnosis and report; `diagnose` and `compare` read run folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO, run_cli_subprocess
from mlstrategy.cli import main

ERRORS = {"train": 0.10, "dev": 0.12, "test": 0.125}


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    # rich wraps table cells to the terminal width; a wide one keeps rows on one line.
    monkeypatch.setenv("COLUMNS", "200")


def _with_evaluation(recipe: Path, **evaluation) -> Path:
    config = yaml.safe_load(recipe.read_text())
    config["evaluation"] = evaluation
    recipe.write_text(yaml.safe_dump(config))
    return recipe


def _run_dir(root: Path) -> Path:
    (metrics,) = root.glob("logs/**/metrics.json")
    return metrics.parent


@pytest.mark.slow
def test_run_writes_diagnosis_report_figures_and_tensorboard(tiny_recipe, capsys):
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mlstrategy.data import ArrayDataModule, BreastCancer
    from mlstrategy.models import LogisticRegression

    recipe = _with_evaluation(tiny_recipe, human_error=0.02, satisfy=["latency_ms<=1000"])
    assert main(["run", str(recipe), "--evaluation.latency_repeats=5"]) == 0
    out = capsys.readouterr().out
    run_dir = _run_dir(tiny_recipe.parent)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    diagnosis = json.loads((run_dir / "diagnosis.json").read_text())
    train, dev = metrics["splits"]["train"]["error"], metrics["splits"]["dev"]["error"]
    assert diagnosis["human_error"] == 0.02
    assert diagnosis["avoidable_bias"] == pytest.approx(train - 0.02)
    assert diagnosis["variance"] == pytest.approx(dev - train)
    assert diagnosis["largest"] in {"avoidable_bias", "variance", "dev_overfitting", "none"}
    assert diagnosis["settings"]["satisfy"] == ["latency_ms<=1000"]
    assert "diagnosis" in out and "<- largest" in out and diagnosis["verdict"] in out

    # Parameter count and latency beside the metrics; one learning-curve point per epoch.
    assert metrics["params"] == 31
    assert 0 < metrics["latency_ms"] < 1000 and metrics["latency_repeats"] == 5
    assert [p["epoch"] for p in metrics["cost_curve"]] == [0.0, 1.0, 2.0]

    # Per-class scores and confusion matrix equal scikit-learn's on the best checkpoint.
    ckpt = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True, map_location="cpu")
    model = LogisticRegression(input_shape=(30,))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    x, y = ArrayDataModule(BreastCancer(), seed=0).prepare()["dev"]
    with torch.no_grad():
        pred = model.predict_labels(model(x))
    row = metrics["splits"]["dev"]
    assert row["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    _, recall, _, support = precision_recall_fscore_support(y, pred, zero_division=0)
    assert row["per_class"]["malignant"]["recall"] == pytest.approx(recall[1], abs=1e-4)
    assert row["per_class"]["benign"]["support"] == support[0]

    report = (run_dir / "report.md").read_text()
    assert "## Diagnosis" in report and "`latency_ms<=1000`" in report and ", met" in report
    for png in ("confusion_matrix.png", "cost_curve.png"):
        assert (run_dir / png).read_bytes()[:4] == b"\x89PNG"
        assert f"]({png})" in report

    events = EventAccumulator(str(run_dir), size_guidance={"tensors": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"diagnosis/avoidable_bias", "diagnosis/variance"} <= set(tags["scalars"])
    assert "report/text_summary" in tags["tensors"]
    assert {"confusion_matrix", "cost_curve"} <= set(tags["images"])


@pytest.mark.slow
def test_plain_fit_accepts_a_recipe_with_an_evaluation_section(tiny_recipe):
    recipe = _with_evaluation(tiny_recipe, human_error=0.02, optimize="dev/error")
    assert main(["fit", "--config", str(recipe), "--trainer.max_epochs=1"]) == 0
    assert (next(tiny_recipe.parent.glob("logs/*/*")) / "checkpoints" / "last.ckpt").is_file()


def test_a_bad_evaluation_section_fails_before_training(tiny_recipe, capsys):
    recipe = _with_evaluation(tiny_recipe, satisfy=["fast enough"])
    assert main(["run", str(recipe)]) == 2
    assert "Cannot read the constraint 'fast enough'" in capsys.readouterr().err
    assert not list(tiny_recipe.parent.glob("logs/**/metrics.json"))


# ------------------------------------------------------------------------------- diagnose
def test_diagnose_reprints_with_the_recipe_human_error_or_an_override(in_tmp, fake_run, capsys):
    run = fake_run(in_tmp / "logs" / "r" / "1", ERRORS, settings={"human_error": 0.01})
    assert main(["diagnose", str(run)]) == 0
    out = capsys.readouterr().out
    assert "The largest gap is avoidable bias (9.00 points)." in out
    assert "train 10.00% - human 1.00%" in out and "Train a bigger network" in out
    # With human-level error at 9.5% the bias is small and variance (2 points) is largest.
    assert main(["diagnose", str(in_tmp / "logs" / "r"), "--human-error", "0.095"]) == 0
    out = capsys.readouterr().out
    assert "The largest gap is variance (2.00 points)." in out
    assert "Regularize: L2, dropout, data augmentation." in out


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "does not exist"),
        ("no_metrics", "has no metrics.json"),
        ("failed", "the run failed"),
        ("bad_human_error", "human_error=2.0 is not an error rate"),
    ],
)
def test_diagnose_bad_input_is_one_paragraph_and_exit_2(in_tmp, fake_run, capsys, case, message):
    target = in_tmp / "logs" / "r" / "1"
    args: list[str] = []
    if case == "no_metrics":
        (target / "checkpoints").mkdir(parents=True)
    elif case == "failed":
        target.mkdir(parents=True)
        (target / "FAILED").write_text("RuntimeError: out of memory\n")
    elif case == "bad_human_error":
        fake_run(target, ERRORS)
        args = ["--human-error", "2"]
    assert main(["diagnose", str(target), *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_diagnose_checks_human_error_before_printing_any_score(in_tmp, fake_run, capsys):
    run = fake_run(in_tmp / "logs" / "r" / "1", ERRORS, settings={"human_error": 0.01})
    assert main(["diagnose", str(run), "--human-error", "1.5"]) == 2
    captured = capsys.readouterr()
    assert "human_error=1.5 is not an error rate" in captured.err
    assert captured.out == ""  # no score table ahead of the error


# -------------------------------------------------------------------------------- compare
def _study(root: Path, fake_run) -> Path:
    study = root / "logs" / "study"
    fake_run(study / "big" / "1", ERRORS, f1={"dev": 0.97}, latency_ms=12.0, params=10_000)
    fake_run(study / "medium" / "1", ERRORS, f1={"dev": 0.93}, latency_ms=4.0)
    fake_run(study / "small" / "1", ERRORS, f1={"dev": 0.95}, latency_ms=1.0)
    return study


def test_compare_marks_failures_and_names_the_winner(in_tmp, fake_run, capsys):
    study = _study(in_tmp, fake_run)
    args = ["compare", str(study), "--optimize", "dev/f1", "--satisfy", "latency_ms<=5"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "winner: small (dev/f1 = 0.95, test/error = 0.125)" in out
    big_row = next(line for line in out.splitlines() if "big" in line)
    assert "fails latency_ms<=5 (12)" in big_row
    # Another constraint changes the winner; the best on dev/f1 never wins while too slow.
    args += ["--satisfy", "dev/f1<=0.94"]
    assert main(args) == 0
    assert "winner: medium" in capsys.readouterr().out


def test_compare_uses_the_rules_recorded_by_the_recipes(in_tmp, fake_run, capsys):
    rules = {"optimize": "params", "goal": "min", "satisfy": ["latency_ms<=5"]}
    run = fake_run(in_tmp / "logs" / "a" / "1", ERRORS, params=50, latency_ms=9.0, settings=rules)
    fake_run(in_tmp / "logs" / "b" / "1", ERRORS, params=80, settings=rules)
    fake_run(in_tmp / "logs" / "c" / "1", ERRORS, params=90, settings=rules)
    assert main(["compare", str(in_tmp / "logs")]) == 0
    out = capsys.readouterr().out
    assert "optimize params (min), satisfy latency_ms<=5" in out
    assert "winner: b" in out
    assert main(["compare", str(run)]) == 0
    assert "no winner" in capsys.readouterr().out


@pytest.mark.slow
def test_a_study_runs_every_recipe_then_compares(in_tmp, tiny_recipe, capsys):
    study = in_tmp / "study"
    study.mkdir()
    base = yaml.safe_load(tiny_recipe.read_text())
    base["evaluation"] = {"optimize": "dev/error", "satisfy": ["params<=100"]}
    (study / "_base.yaml").write_text(yaml.safe_dump(base))
    (study / "fast.yaml").write_text(yaml.safe_dump({"trainer": {"max_epochs": 1}}))
    (study / "slow.yaml").write_text(yaml.safe_dump({"trainer": {"max_epochs": 2}}))
    assert main(["run", str(study), "--evaluation.latency_repeats=3"]) == 0
    out = capsys.readouterr().out
    assert "study" in out and "dev/error min" in out and "winner:" in out
    runs = sorted(p.parent.parent.name for p in in_tmp.glob("logs/study/*/*/metrics.json"))
    assert runs == ["fast", "slow"]
    assert main(["compare", "logs/study"]) == 0
    assert "optimize dev/error (min), satisfy params<=100" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--satisfy", "latency_ms=<5"], "Cannot read the constraint 'latency_ms=<5'"),
        (["--satisfy", "latency<=5"], "Unknown satisficing metric 'latency'"),
        (["--optimize", "dev/f2"], "Metrics available: "),
        (["--optimize", "dev/f2"], "dev/f1"),
    ],
)
def test_compare_bad_rules_are_one_paragraph_and_exit_2(in_tmp, fake_run, capsys, args, message):
    study = _study(in_tmp, fake_run)
    assert main(["compare", str(study), *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.slow
def test_compare_missing_folder_from_the_console_script(in_tmp):
    result = run_cli_subprocess("compare", "logs/nope", cwd=in_tmp)
    assert result.returncode == 2
    assert "'logs/nope' does not exist" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_help_lists_the_new_verbs(capsys):
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    assert "  diagnose RUN_DIR" in top and "  compare RUNS" in top
    assert main(["compare", "--help"]) == 0
    assert "satisficing" in capsys.readouterr().out


# --------------------------------------------------------------------- the showcase study
@pytest.mark.slow
def test_showcase_recipes_give_bias_and_variance_verdicts(in_tmp, capsys):
    overrides = ["--trainer.enable_progress_bar=false", "--evaluation.latency_repeats=5"]
    assert main(["run", str(REPO / "recipes" / "strategy"), *overrides]) == 0
    verdicts = {
        p.parent.parent.name: json.loads(p.read_text())
        for p in in_tmp.glob("logs/strategy/*/*/diagnosis.json")
    }
    assert verdicts["flower_logistic"]["largest"] == "avoidable_bias"
    assert verdicts["flower_logistic"]["avoidable_bias"] > 0.2
    assert verdicts["flower_wide_net"]["largest"] == "variance"
    assert verdicts["flower_wide_net"]["variance"] > 0.08
    assert verdicts["flower_wide_net"]["train_error"] < 0.02
    assert "winner: flower_wide_net" in capsys.readouterr().out


# ------------------------------------------------------------------------ learning curve
@pytest.mark.slow
def test_learning_curve_trains_on_growing_nested_subsets(tiny_recipe, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe = _with_evaluation(tiny_recipe, human_error=0.02, latency_repeats=2)
    assert main(["learning-curve", str(recipe), "--sizes", "1.0,0.25"]) == 0
    out = capsys.readouterr().out
    (result,) = tiny_recipe.parent.glob("logs/tiny-learning-curve/*/learning_curve.json")
    curve = json.loads(result.read_text())
    assert [p["fraction"] for p in curve["points"]] == [0.25, 1.0]
    assert [p["m"] for p in curve["points"]] == [85, 341]  # of BreastCancer's 341 train examples
    assert curve["human_error"] == 0.02
    assert curve["verdict"] in {"high_bias", "more_data_helps", "flat"}
    assert curve["message"] in out
    assert (result.parent / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    events = EventAccumulator(str(result.parent))
    events.Reload()
    steps = [e.step for e in events.Scalars("learning_curve/dev_error")]
    assert steps == [85, 341]
    # One complete run folder per size.
    assert len(list(result.parent.glob("size_*/*/*/metrics.json"))) == 2


def test_learning_curve_bad_sizes_exit_2(tiny_recipe, capsys):
    assert main(["learning-curve", str(tiny_recipe), "--sizes", "0.5"]) == 2
    assert "two or more fractions" in capsys.readouterr().err
