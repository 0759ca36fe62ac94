"""Human-level performance in the course's variants (typical human, expert, team of experts):
the best is the Bayes proxy, a train or dev error below it is explained rather than shown as a
negative avoidable bias, and with human level on the target the course's 2x3 table for
mismatched distributions fills the cells a run can measure."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mlstrategy.cli import main
from mlstrategy.evaluation.diagnosis import diagnose
from mlstrategy.evaluation.human_level import (
    distributions_table,
    parse_human_error_option,
)
from mlstrategy.evaluation.settings import EvaluationSettings
from mlstrategy.reporting.human_level import BELOW_HUMAN_MARK, distributions_lines
from mlstrategy.reporting.markdown import pct
from mlstrategy.reporting.run_report import render_report, write_run_report

LEVELS = {"typical": 0.03, "expert": 0.012, "team": 0.008}
ROW = {"n": 1000, "accuracy": 0.9, "precision": 0.9, "recall": 0.9, "f1": 0.9, "loss": 0.3}


def _metrics(errors: dict[str, float]) -> dict:
    return {"recipe": "r.yaml", "splits": {s: {**ROW, "error": e} for s, e in errors.items()}}


# ---------------------------------------------------------------------------- the proxy
@pytest.mark.parametrize(
    "levels",
    [LEVELS, {"typical": 0.2}, {"expert": 0.05, "typical": 0.04}, {"team": 0.1, "expert": 0.1}],
)
def test_the_bayes_proxy_is_the_lowest_level(levels):
    d = diagnose(0.3, 0.35, test_error=0.36, human_error=levels)
    assert d.human_error == min(levels.values())
    assert d.avoidable_bias == pytest.approx(0.3 - min(levels.values()))
    assert levels[d.human_proxy] == min(levels.values())
    assert d.human_levels == levels  # every level kept, in the course's order
    assert list(d.human_levels) == [k for k in ("typical", "expert", "team") if k in levels]
    if levels == {"team": 0.1, "expert": 0.1}:
        assert d.human_proxy == "team"  # equal errors: the more expert level
    # A number still works as before, with no levels.
    plain = diagnose(0.3, 0.35, human_error=0.05)
    assert (plain.human_error, plain.human_levels, plain.human_proxy) == (0.05, {}, None)


def test_settings_record_every_level_and_the_proxy():
    s = EvaluationSettings(human_error=LEVELS, human_error_dev={"typical": 0.06, "expert": 0.04})
    s.fit_model(regression=False)
    saved = s.to_dict()
    assert saved["human_error"] == 0.008  # the proxy: what older readers (learning-curve) use
    assert saved["human_levels"] == LEVELS
    assert saved["human_error_dev"] == {"typical": 0.06, "expert": 0.04}
    assert "human_levels" not in EvaluationSettings(human_error=0.01).to_dict()


def test_the_option_reads_a_number_or_levels():
    assert parse_human_error_option("0.05") == 0.05
    assert parse_human_error_option("typical=0.03, expert=0.01") == {
        "typical": 0.03,
        "expert": 0.01,
    }
    with pytest.raises(ValueError, match="cannot read 'expert'"):
        parse_human_error_option("typical=0.03,expert")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"expret": 0.01}, r"unknown level 'expret' \(did you mean 'expert'\?\)"),
        ({"expert": -0.01}, r"human_error\.expert=-0\.01 is not an error"),
        ({}, "empty mapping"),
        ({"team": "low"}, r"human_error\.team='low' is not a number"),
        (-0.5, r"human_error=-0\.5 is not an error"),
    ],
)
def test_bad_levels_name_the_fix(value, message):
    with pytest.raises(ValueError, match=message):
        EvaluationSettings(human_error=value)
    with pytest.raises(ValueError, match=message.replace("human_error", "human_error_dev")):
        EvaluationSettings(human_error_dev=value)
    with pytest.raises(ValueError, match=r"human_error\.expert=2\.0 is not an error rate"):
        EvaluationSettings(human_error={"expert": 2.0}).fit_model(regression=False)


# ----------------------------------------------------------------- below human level
def test_train_below_human_level_is_explained_not_a_negative_avoidable_bias():
    d = diagnose(0.004, 0.03, test_error=0.031, train_dev_error=0.02, human_error=LEVELS)
    assert d.below_human == ("train",)
    assert d.avoidable_bias == pytest.approx(0.004 - 0.008)
    (note,) = [n for n in d.notes if n.startswith("Train error")]
    assert "Train error (0.40%) is below human-level error (0.80%, team of experts)" in note
    assert "avoidable bias can no longer be estimated this way" in note
    assert "Bayes error is unknown, somewhere below the best human" in note
    assert not [n for n in d.notes if n.startswith("Dev error")]  # dev is above human level

    report = render_report(_metrics({"train": 0.004, "train_dev": 0.02, "dev": 0.03}), d)
    # Every level in a table, the proxy marked; the list of levels is not repeated as a note.
    assert "| typical human | 3.00% |  |" in report
    assert "| team of experts | 0.80% | **the proxy** |" in report
    assert "Note: Human-level error: typical" not in report
    assert "Note: Train error (0.40%) is below human-level error" in report
    # No negative avoidable bias without the mark, in any table (ladder, gaps, knobs).
    negative = [line for line in report.splitlines() if "-0.40%" in line and line[0] == "|"]
    assert len(negative) == 3
    assert all(BELOW_HUMAN_MARK in line for line in negative), negative


def test_dev_below_human_level_says_the_model_beats_the_best_human():
    d = diagnose(0.002, 0.005, human_error={"typical": 0.02, "expert": 0.01})
    assert d.below_human == ("train", "dev")
    notes = " ".join(d.notes)
    assert "Dev error (0.50%) is below human-level error (1.00%, expert)" in notes
    assert "the model beats the best human on held-out data" in notes
    assert "Bayes error is unknown, below the best human" in notes
    report = render_report(_metrics({"train": 0.002, "dev": 0.005}), d)
    assert "Note: Dev error (0.50%) is below human-level error" in report
    # All gaps at or below 0 is not "at the proxy": the verdict says train is below it.
    d = diagnose(0.002, 0.002, human_error=0.01)
    assert d.largest == "none" and "below the human-level proxy" in d.verdict


def test_diagnosis_json_holds_every_level(tmp_path):
    d = diagnose(0.004, 0.006, test_error=0.007, human_error=LEVELS)
    settings = EvaluationSettings(human_error=LEVELS).to_dict()
    metrics = _metrics({"train": 0.004, "dev": 0.006, "test": 0.007})
    write_run_report(tmp_path, metrics, d, settings=settings)
    saved = json.loads((tmp_path / "diagnosis.json").read_text())
    assert saved["human_levels"] == LEVELS and saved["human_proxy"] == "team"
    assert saved["human_error"] == 0.008 and saved["settings"]["human_levels"] == LEVELS
    assert saved["below_human"] == ["train", "dev", "test"]
    assert any("Train error (0.40%) is below" in n for n in saved["notes"])


def test_tensorboard_gets_no_avoidable_bias_that_cannot_be_estimated(tmp_path, tensorboard_run):
    logger, read = tensorboard_run
    d = diagnose(0.004, 0.03, test_error=0.031, train_dev_error=0.02, human_error=LEVELS)
    metrics = _metrics({"train": 0.004, "train_dev": 0.02, "dev": 0.03, "test": 0.031})
    write_run_report(tmp_path, metrics, d, logger=logger)
    found = read()
    assert "diagnosis/avoidable_bias" not in found["scalars"]  # a scalar has no note beside it
    assert found["scalars"]["diagnosis/variance"] == pytest.approx(0.016)
    assert "Train error (0.40%) is below human-level error" in found["texts"]["report"]


# ------------------------------------------------------------------------ the 2x3 table
def test_the_2x3_table_fills_what_is_measured_and_says_why_not_the_rest():
    d = diagnose(0.07, 0.06, test_error=0.065, train_dev_error=0.10, human_error=0.04)
    sources = {
        "splits": {
            "train": {"source": 900, "target": 45},
            "train_dev": {"source": 100, "target": 5},
            "dev": {"source": 0, "target": 200},
        }
    }
    table = distributions_table(d, sources, {"typical": 0.08, "expert": 0.06})
    rows = table["rows"]
    # The course's speech example: 4% / 6% human, 7% train, 10% train-dev, 6% dev.
    assert rows["human level"]["general"]["error"] == 0.04
    assert rows["human level"]["target"]["error"] == 0.06  # the expert, the best of the levels
    assert rows["trained on"]["general"]["error"] == 0.07
    assert rows["not trained on"]["general"]["error"] == 0.10
    assert rows["not trained on"]["target"]["error"] == 0.06
    assert rows["trained on"]["target"]["error"] is None
    assert "45 target examples are scored together" in rows["trained on"]["target"]["reason"]
    assert table["readings"]["human_dev_minus_human"] == pytest.approx(0.02)
    assert table["readings"]["dev_minus_human_dev"] == pytest.approx(0.0)
    # The README's example: the same errors, no target data in training.
    no_target = {"splits": {"train": {"source": 900, "target": 0}, "train_dev": {"source": 100}}}
    lines = distributions_lines(distributions_table(d, no_target, 0.06))
    assert lines[6:9] == [
        "| human level | 4.00% | 6.00% |",
        "| error on examples trained on | 7.00% (train) | — (no target example was trained on: "
        "data.init_args.target_in_train is 0) |",
        "| error on examples not trained on | 10.00% (train-dev) | 6.00% (dev) |",
    ]

    # No target in training, no train-dev split, no human levels: every "—" says why.
    d = diagnose(0.07, 0.2)
    table = distributions_table(d, {"splits": {"train": {"source": 900, "target": 0}}})
    reasons = {
        r: {c: cell["reason"] for c, cell in cells.items()} for r, cells in table["rows"].items()
    }
    assert "set evaluation.human_error" in reasons["human level"]["general"]
    assert "set evaluation.human_error_dev" in reasons["human level"]["target"]
    assert "no target example was trained on" in reasons["trained on"]["target"]
    assert "no train-dev split" in reasons["not trained on"]["general"]
    assert table["readings"] == {}


def _tiny_mismatch_recipe(root: Path) -> Path:
    recipe = {
        "model": {
            "class_path": "mlstrategy.models.DeepNet",
            "init_args": {"layer_dims": [16], "optimizer": "adam", "learning_rate": 0.01},
        },
        "data": {
            "class_path": "mlstrategy.data.MismatchDataModule",
            "init_args": {
                "source": {
                    "class_path": "mlstrategy.data.PhoneDigits",
                    "init_args": {"half": "first", "clean": True},
                },
                "target": {
                    "class_path": "mlstrategy.data.PhoneDigits",
                    "init_args": {"half": "second"},
                },
                "target_in_train": 100,
                "dev_fraction": 0.2,
                "test_fraction": 0.2,
                "train_dev_fraction": 0.1,
                "batch_size": 256,
                "normalize": False,
                "seed": 0,
            },
        },
        "trainer": {"max_epochs": 2, "enable_progress_bar": False, "enable_model_summary": False},
        "evaluation": {
            "human_error": {"typical": 0.03, "expert": 0.02},
            "human_error_dev": {"typical": 0.06, "team": 0.04},
            "latency_repeats": 2,
        },
    }
    path = root / "tiny_mismatch.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.slow
def test_a_tiny_mismatch_run_reports_the_2x3_table_as_computed_by_hand(in_tmp, monkeypatch):
    from mlstrategy.runs.trained_run import load_run, run_datamodule

    monkeypatch.setenv("COLUMNS", "200")
    assert main(["run", str(_tiny_mismatch_recipe(in_tmp))]) == 0
    (run_dir,) = [p.parent for p in in_tmp.glob("logs/**/metrics.json")]
    saved = json.loads((run_dir / "diagnosis.json").read_text())
    report = (run_dir / "report.md").read_text()

    # By hand: the best checkpoint's predictions on each split, counted with NumPy.
    run = load_run(run_dir)
    data = run_datamodule(run)
    prepared = data.prepare()
    run.model.eval()
    wrong = {}
    with torch.no_grad():
        for split in ("train", "train_dev", "dev"):
            x, y = prepared[split]
            wrong[split] = (run.model(x).argmax(1) != y).numpy()
    errors = {s: float(w.mean()) for s, w in wrong.items()}
    train_target = data.origin["train"] == "target"
    assert train_target.sum() == 100 - saved["sources"]["splits"]["train_dev"]["target"]
    assert np.all(data.origin["dev"] == "target")

    cells = saved["distributions_table"]["rows"]
    assert cells["human level"]["general"]["error"] == 0.02  # the expert's, the lower
    assert cells["human level"]["target"]["error"] == 0.04  # the team's
    assert cells["trained on"]["general"]["error"] == pytest.approx(errors["train"])
    assert cells["not trained on"]["general"]["error"] == pytest.approx(errors["train_dev"])
    assert cells["not trained on"]["target"]["error"] == pytest.approx(errors["dev"])
    assert cells["trained on"]["target"]["error"] is None  # scored with the source examples
    readings = saved["distributions_table"]["readings"]
    assert readings["dev_minus_human_dev"] == pytest.approx(errors["dev"] - 0.04)
    assert readings["human_dev_minus_human"] == pytest.approx(0.02)

    n_train = len(train_target)
    mix = f"{n_train - int(train_target.sum()):,} source + {int(train_target.sum()):,} target"
    assert "| human level | 2.00% | 4.00% (team of experts) |" in report
    assert f"| error on examples trained on | {pct(errors['train'])} (train, the mix: {mix}) |" in (
        report
    )
    not_trained = re.search(r"\| error on examples not trained on \| (.+) \| (.+) \|", report)
    assert not_trained is not None
    assert not_trained.group(1).startswith(pct(errors["train_dev"]) + " (train-dev")
    assert not_trained.group(2) == f"{pct(errors['dev'])} (dev)"
    assert "are scored together with its source examples, not apart" in report
    assert saved["settings"]["human_levels"] == {"typical": 0.03, "expert": 0.02}


# ----------------------------------------------------------------------------- the CLI
def _recipe_with(tiny_recipe: Path, evaluation: dict) -> Path:
    config = yaml.safe_load(tiny_recipe.read_text())
    config["evaluation"] = evaluation
    tiny_recipe.write_text(yaml.safe_dump(config))
    return tiny_recipe


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("recipe", {"human_error": {"expret": 0.01}}, "unknown level 'expret'"),
        ("recipe", {"human_error": {"expert": -0.01}}, "human_error.expert=-0.01 is not an"),
        ("recipe", {"human_error_dev": {"team": -1}}, "human_error_dev.team=-1"),
        ("option", ["--human-error", "expret=0.01"], "unknown level 'expret'"),
        ("option", ["--human-error", "typical=-0.01"], "typical=-0.01 is not an error"),
    ],
)
def test_bad_human_levels_exit_2_with_one_paragraph(tiny_recipe, capsys, where, value, message):
    args = ["run", str(tiny_recipe)]
    if where == "recipe":
        _recipe_with(tiny_recipe, value)
    else:
        args += value
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert message in err
    assert "Traceback" not in captured.err + captured.out
    assert "\n\n" not in err  # one paragraph
    assert "typical, expert and team" in err or "Give" in err or "give" in err
    assert not list(tiny_recipe.parent.glob("logs/**/metrics.json"))


def test_diagnose_takes_levels_from_the_option_or_the_run(in_tmp, fake_run, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    errors = {"train": 0.05, "dev": 0.07, "test": 0.075}
    settings = {"human_error": 0.01, "human_levels": {"typical": 0.03, "team": 0.01}}
    run = fake_run(in_tmp / "logs" / "r" / "1", errors, settings=settings)
    assert main(["diagnose", str(run)]) == 0
    out = capsys.readouterr().out
    assert (
        "typical human 3.00%, team of experts 1.00%" in out and "train 5.00% - human 1.00%" in out
    )
    assert main(["diagnose", str(run), "--human-error", "typical=0.06,expert=0.04"]) == 0
    out = capsys.readouterr().out
    assert "train 5.00% - human 4.00%" in out and "The best, expert (4.00%)" in out
    assert main(["diagnose", str(run), "--human-error", "expret=0.04"]) == 2
    err = capsys.readouterr().err
    assert "unknown level 'expret' (did you mean 'expert'?)" in err and "Traceback" not in err


def test_console_table_marks_an_avoidable_bias_below_human_level():
    from rich.console import Console

    from mlstrategy.evaluation.diagnosis import diagnose
    from mlstrategy.reporting.tables import diagnosis_table

    console = Console(width=80, record=True)
    console.print(diagnosis_table(diagnose(0.01, 0.05, human_error=0.02)))
    rows = {
        line.split("│")[1].strip(): line
        for line in console.export_text().splitlines()
        if line.startswith("│") and line.split("│")[1].strip()
    }
    assert "-1.00%" in rows["avoidable bias"] and "below human" in rows["avoidable bias"]
    assert "below human" not in rows["variance"]
    assert "below human" not in console.export_text().split("variance")[0].split("gap")[0]
