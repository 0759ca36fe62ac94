"""`mlstrategy run recipes/end_to_end/`: the study runs from one command and writes its run
folder (tables, plot, TensorBoard); bad recipes fail with the argument named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO
from mlstrategy.cli import main
from mlstrategy.pipeline import EndToEndStudy
from mlstrategy.runs.study_recipe import is_study_recipe

STUDY = REPO / "recipes" / "end_to_end"
RECIPE = STUDY / "end_to_end_vs_pipeline.yaml"
# A few seconds: tiny canvases, sizes and step counts; both localizers.
TINY = [
    "--study.init_args.task.init_args.canvas_size=16",
    "--study.init_args.task.init_args.n_train=60",
    "--study.init_args.task.init_args.n_test=40",
    "--study.init_args.task.init_args.clutter=2",
    "--study.init_args.train_sizes=[20,60]",
    "--study.init_args.localizers=[template,learned]",
    "--study.init_args.epochs=1",
    "--study.init_args.min_steps=3",
]


def test_the_recipe_parses_into_the_study_it_describes() -> None:
    from jsonargparse import ActionConfigFile, ArgumentParser

    from mlstrategy.pipeline.study import Study

    assert is_study_recipe(RECIPE)
    assert not is_study_recipe(REPO / "recipes" / "quickstart.yaml")
    parser = ArgumentParser()
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_subclass_arguments(Study, "study")
    study = parser.instantiate(parser.parse_args([f"--config={RECIPE}"])).study
    assert isinstance(study, EndToEndStudy)
    assert study.train_sizes == [250, 500, 1000, 2000, 4000, 8000]
    assert study.task.n_train == 8000 and study.task.canvas_size == 24
    net = study.end_to_end((1, 24, 24), 10)
    assert net.hparams["channels"] == [8, 16, 32]


@pytest.mark.slow
def test_study_runs_from_one_command_and_writes_its_run_folder(in_tmp: Path) -> None:
    assert main(["run", str(STUDY), *TINY]) == 0
    (run_dir,) = (in_tmp / "logs" / "end_to_end_vs_pipeline").iterdir()
    results = json.loads((run_dir / "study.json").read_text())
    names = ["end-to-end", "pipeline (template localizer)", "pipeline (learned localizer)"]
    assert list(results["test_error"]) == names
    assert results["train_sizes"] == [20, 60]
    for name in names[1:]:
        for m, rows in results["ceiling"][name].items():
            # The by-parts numbers add up: the system's error is the pipeline's test error, the
            # shares sum to it, and the last row is exact.
            assert rows[0]["error"] == results["test_error"][name][[20, 60].index(int(m))]
            assert sum(r["gain"] for r in rows[1:]) == pytest.approx(rows[0]["error"])
            assert rows[-1]["error"] == 0.0
            assert rows[-2]["error"] == pytest.approx(rows[-1]["stage_error"])
    report = (run_dir / "report.md").read_text()
    assert "| m | end-to-end | pipeline (template localizer) |" in report
    assert "### pipeline (learned localizer)" in report
    assert results["crossover"]["pipeline (template localizer)"]["summary"] in report
    assert (run_dir / "error_vs_train_size.png").read_bytes()[:4] == b"\x89PNG"
    assert "study:" in (run_dir / "config.yaml").read_text()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir)).Reload()
    steps = [e.step for e in events.Scalars("test_error/end_to_end")]
    assert steps == [20, 60]
    assert "test_error/pipeline_learned" in events.Tags()["scalars"]
    assert (run_dir / "models" / "m60_end_to_end").is_dir()


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("--study.init_args.train_sizes=[40,20]", "train_sizes=[40, 20] must be increasing"),
        ("--study.init_args.train_sizes=[20,9000]", "raise task.init_args.n_train"),
        ("--study.init_args.localizers=[foo]", "Got value: foo"),
        ("--study.init_args.task.init_args.clutter=-1", "clutter=-1 must be >= 0"),
        ("--resume", "is a study recipe"),
    ],
)
def test_bad_study_recipes_fail_with_the_argument_named(
    in_tmp: Path, capsys: pytest.CaptureFixture[str], override: str, needle: str
) -> None:
    assert main(["run", str(RECIPE), override]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert needle in err
    assert not (in_tmp / "logs").exists() or not any((in_tmp / "logs").rglob("study.json"))
