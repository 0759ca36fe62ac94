"""A user's first hour: a typo or a wrong type is one short paragraph that names the fix."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

from conftest import REPO, write_fake_run
from mlstrategy.cli import main

QUICKSTART = str(REPO / "recipes" / "quickstart.yaml")


def _error(capsys, *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2, out + err
    text = out + err
    assert "usage:" not in text and "Traceback" not in text
    # Printed without wrapping; at 80 columns the paragraph still fits in 12 lines.
    assert len(text.splitlines()) == 1 and len(text) <= 12 * 80, text
    return text


def test_a_typo_in_an_override_names_the_key_the_override_and_the_closest_name(in_tmp, capsys):
    text = _error(capsys, "run", QUICKSTART, "--model.init_args.learning_rat=0.1")
    assert "Unknown key `model.init_args.learning_rat`" in text
    assert "(override --model.init_args.learning_rat=0.1)" in text
    assert "did you mean `learning_rate`?" in text  # an argument of the base class, via kwargs
    listing = "mlstrategy fit --model.help mlstrategy.models.LogisticRegression"
    assert f"`{listing}`" in text
    assert not (in_tmp / "logs").exists()  # refused before a run folder


def test_the_listing_command_of_the_typo_message_lists_the_class_options(in_tmp, capsys):
    assert main(["fit", "--model.help", "mlstrategy.models.LogisticRegression"]) == 0
    assert "--model.learning_rate" in capsys.readouterr().out
    # A nested class's listing names the class above it first.
    args = ["--data", "mlstrategy.data.ArrayDataModule", "--data.source.help"]
    assert main(["fit", *args, "mlstrategy.data.BreastCancer"]) == 0
    assert "Help for --source.help=mlstrategy.data.BreastCancer" in capsys.readouterr().out


def test_a_typo_inside_a_recipe_file_names_the_file(in_tmp, capsys):
    recipe = yaml.safe_load((REPO / "recipes" / "quickstart.yaml").read_text())
    init_args = recipe["model"]["init_args"]
    init_args["learning_rat"] = init_args.pop("learning_rate")
    path = in_tmp / "typo.yaml"
    path.write_text(yaml.safe_dump(recipe))
    text = _error(capsys, "run", str(path))
    assert f"(in {path})" in text and "did you mean `learning_rate`?" in text
    init_args["learning_rate"] = init_args.pop("learning_rat")
    recipe["data"]["init_args"]["source"]["init_args"] = {"sed": 1}
    path.write_text(yaml.safe_dump(recipe))
    text = _error(capsys, "run", str(path))
    assert "Unknown key `data.init_args.source.init_args.sed`" in text
    nested = "mlstrategy fit --data mlstrategy.data.ArrayDataModule --data.source.help"
    assert f"`{nested} mlstrategy.data.BreastCancer`" in text


def test_a_typo_in_a_trainer_or_evaluation_key_suggests_from_that_section(in_tmp, capsys):
    text = _error(capsys, "run", QUICKSTART, "--evaluation.human_eror=0.1")
    assert "did you mean `human_error`" in text
    assert "`mlstrategy fit --help | grep -- --evaluation.`" in text
    recipe = yaml.safe_load((REPO / "recipes" / "quickstart.yaml").read_text())
    recipe["trainer"]["max_epoch"] = recipe["trainer"].pop("max_epochs")
    (in_tmp / "t.yaml").write_text(yaml.safe_dump(recipe))
    text = _error(capsys, "fit", "--config", str(in_tmp / "t.yaml"))
    assert "Unknown key `trainer.max_epoch`" in text and "`max_epochs`" in text


def test_a_wrong_type_is_one_line_with_the_key_the_value_and_the_type(in_tmp, capsys):
    text = _error(capsys, "run", QUICKSTART, "--trainer.max_epochs=many")
    assert text.startswith("error: trainer.max_epochs=many: expected int or null (override")
    text = _error(capsys, "run", QUICKSTART, "--model.init_args.optimizer=adamm")
    assert "model.init_args.optimizer=adamm: expected one of gd, momentum, rmsprop, adam" in text


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    }


@pytest.mark.slow
def test_resuming_a_finished_run_says_so_names_its_report_and_changes_nothing(tiny_recipe, capsys):
    assert main(["run", str(tiny_recipe)]) == 0
    (run_dir,) = Path("logs/tiny").glob("*")  # relative, as --resume without a folder finds it
    before = _snapshot(tiny_recipe.parent / "logs")
    capsys.readouterr()
    for resume in (["--resume", str(run_dir)], ["--resume"]):  # the folder, or the newest
        assert main(["run", str(tiny_recipe), *resume]) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert f"{run_dir} finished already" in out and "nothing in it was changed" in out
        assert f"Its report: {run_dir / 'report.md'}" in out
    # No re-scoring, no new events file, no new run folder: names, sizes and mtimes as before.
    assert _snapshot(tiny_recipe.parent / "logs") == before


def _data_config(run_dir: Path, source: str, **init_args) -> None:
    data = {"class_path": "mlstrategy.data.ArrayDataModule", "init_args": init_args}
    data["init_args"]["source"] = {"class_path": source, "init_args": {"num_samples": 500}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"data": data}))


def test_compare_refuses_runs_on_different_data_unless_across_data(in_tmp, capsys):
    a = write_fake_run(in_tmp / "logs/a/1", {"train": 0.05, "dev": 0.10})
    b = write_fake_run(in_tmp / "logs/b/1", {"train": 0.05, "dev": 0.30})
    _data_config(a, "mlstrategy.data.MNIST1D", seed=0, batch_size=32)
    _data_config(b, "mlstrategy.data.Digits", seed=0, batch_size=32)
    assert main(["compare", "logs"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "The runs were not scored on the same data: a and b differ in data source" in err
    assert "'mlstrategy.data.MNIST1D' vs 'mlstrategy.data.Digits'" in err
    assert "Pass --across-data to compare them anyway." in err
    assert main(["compare", "logs", "--across-data"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "warning: The runs were not scored on the same data" in out

    # Another split (seed) or another dev size is other data too.
    _data_config(b, "mlstrategy.data.MNIST1D", seed=1, batch_size=32)
    assert main(["compare", "logs"]) == 2
    assert "seed 0 vs 1" in " ".join(capsys.readouterr().err.split())
    write_fake_run(b, {"train": 0.05, "dev": 0.30})
    metrics = json.loads((b / "metrics.json").read_text())
    metrics["splits"]["dev"]["n"] = 60
    (b / "metrics.json").write_text(json.dumps(metrics))
    _data_config(b, "mlstrategy.data.MNIST1D", seed=0, batch_size=32)
    assert main(["compare", "logs"]) == 2
    assert "dev size 100 vs 60" in " ".join(capsys.readouterr().err.split())


def test_compare_takes_runs_that_differ_only_in_how_they_train(in_tmp, capsys):
    a = write_fake_run(in_tmp / "logs/a/1", {"train": 0.05, "dev": 0.10})
    b = write_fake_run(in_tmp / "logs/b/1", {"train": 0.05, "dev": 0.30})
    _data_config(a, "mlstrategy.data.MNIST1D", seed=0, batch_size=32)
    _data_config(b, "mlstrategy.data.MNIST1D", seed=0, batch_size=None, train_dev_fraction=0.1)
    assert main(["compare", "logs"]) == 0
    out = capsys.readouterr().out
    assert "same data" not in out and "winner" in out.lower()


def _readme_run_folder_names() -> list[str]:
    """The names in the first column of the README's run-folder table."""
    text = (REPO / "README.md").read_text()
    table = text.split("| file | what |", 1)[1].split("<!--", 1)[0]
    names: list[str] = []
    for row in table.splitlines()[2:]:
        names += re.findall(r"`([^`]+)`", row.split("|")[1])
    return names


@pytest.mark.slow
def test_every_file_a_run_folder_holds_is_in_the_readme_table(tiny_recipe, capsys):
    assert main(["run", str(tiny_recipe)]) == 0
    (run_dir,) = Path("logs/tiny").glob("*")
    events = set(run_dir.glob("events.out.tfevents.*"))
    assert main(["errors", str(run_dir)]) == 0
    best = str(run_dir / "checkpoints" / "best.ckpt")
    args = ["--trainer.enable_progress_bar=false"]
    assert main(["test", "--config", str(tiny_recipe), "--ckpt_path", best, *args]) == 0
    # The test verb logged into the run folder: one more events file, as the table says.
    assert len(set(run_dir.glob("events.out.tfevents.*")) - events) == 1
    names = _readme_run_folder_names()
    assert {"hparams.yaml", "errors.csv", "suspect_labels.csv", "FAILED"} <= set(names)
    for path in run_dir.rglob("*"):
        if path.is_file():
            rel = str(path.relative_to(run_dir))
            assert any(fnmatch(rel, n) or fnmatch(path.name, n) for n in names), rel
