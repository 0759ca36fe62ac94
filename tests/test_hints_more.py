"""A mistyped command line or recipe is answered with the name the user meant.

Misspelt class paths, section names and verb options, an override without ``--``, a data file
given as the recipe: each is refused before anything is built (exit 2, one line, no run
folder), naming what was given, where, and the closest valid spelling.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from conftest import TINY_RECIPE
from mlstrategy.cli import main
from mlstrategy.runs.errors import config_error


def _refused(capsys, *argv: str) -> str:
    """The error line of a command that must be refused as bad input, and leave no run."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "Traceback" not in out + err
    assert not list(Path("logs").glob("**/config.yaml")), "a refused command started a run"
    return " ".join(err.split())  # rich wraps long lines at the console's width


def _recipe(folder: Path, name: str = "tiny.yaml", **sections: object) -> str:
    (folder / name).write_text(yaml.safe_dump({**TINY_RECIPE, **sections}))
    return name


# ------------------------------------------------------------------- without a parser run
def test_an_optional_int_s_expected_type_says_null_once():
    text = """Parser key "data":
  Does not validate against any of the Union subtypes
  Subtypes: [<class 'lightning.pytorch.core.datamodule.LightningDataModule'>, <class 'NoneType'>]
  Errors:
    - Problem with given class_path 'mlstrategy.data.ArrayDataModule':
        Parser key "batch_size":
          Does not validate against any of the Union subtypes
          Subtypes: [<class 'int'>, <class 'NoneType'>]
          Errors:
            - Expected a <class 'int'>
            - Expected a <class 'NoneType'>
          Given value type: <class 'str'>
          Given value: abc
    - Expected a <class 'NoneType'>
  Given value type: <class 'jsonargparse._util.NestedArg'>
  Given value: NestedArg(key='batch_size', val='abc')"""
    args = ["--config=r.yaml", "--data.init_args.batch_size=abc"]
    assert config_error(text, args, []) == (
        "data.init_args.batch_size=abc: expected int or null "
        "(override --data.init_args.batch_size=abc)"
    )


def test_a_verb_s_own_option_is_preferred_to_a_recipe_section_of_the_same_spelling():
    text = "unrecognized arguments: --trails 3"
    options = ["trainer.max_epochs", "model", "data"]
    plain = config_error(text, [], options)
    assert plain is not None and "Unknown key `trails`" in plain and "--trials" not in plain
    tuned = config_error(text, [], options, "tune", ["-h", "--help", "--trials", "--refine"])
    assert tuned == (
        "Unknown option `--trails`: did you mean `--trials`? "
        "Every option of `mlstrategy tune`: `mlstrategy tune --help`"
    )


# ------------------------------------------------------------------------ through the CLI
def test_a_misspelt_class_path_names_the_class_meant_and_where_it_was_given(in_tmp, capsys):
    recipe = _recipe(in_tmp)
    override = "--model.class_path=mlstrategy.models.LogisticRegresion"
    assert _refused(capsys, "run", recipe, override) == (
        "error: Unknown class `mlstrategy.models.LogisticRegresion` for model "
        f"(override {override}): did you mean `mlstrategy.models.LogisticRegression`?"
    )
    model = {**TINY_RECIPE["model"], "class_path": "mlstrategy.models.LogisticRegresion"}
    typo = _recipe(in_tmp, "typo.yaml", model=model)
    assert _refused(capsys, "run", typo) == (
        "error: Unknown class `mlstrategy.models.LogisticRegresion` for model (in typo.yaml): "
        "did you mean `mlstrategy.models.LogisticRegression`?"
    )
    # A nested class: the data's source, not the whole data section.
    data = yaml.safe_load(yaml.safe_dump(TINY_RECIPE["data"]))
    data["init_args"]["source"]["class_path"] = "mlstrategy.data.BreastCancr"
    source = _recipe(in_tmp, "source.yaml", data=data)
    assert _refused(capsys, "run", source) == (
        "error: Unknown class `mlstrategy.data.BreastCancr` for data.init_args.source "
        "(in source.yaml): did you mean `mlstrategy.data.BreastCancer`?"
    )
    # A misspelt module, and a bare class name.
    message = _refused(capsys, "run", recipe, "--model=mlstrategy.modelz.LogisticRegression")
    assert "did you mean `mlstrategy.models.LogisticRegression`?" in message
    message = _refused(capsys, "run", recipe, "--model=LogisticRegresion")
    assert "did you mean `mlstrategy.models.LogisticRegression`?" in message


def test_a_misspelt_section_is_matched_against_the_sections(in_tmp, capsys):
    recipe = _recipe(in_tmp)
    assert _refused(capsys, "run", recipe, "--trainr.max_epochs=5") == (
        "error: Unknown section `trainr` in `trainr.max_epochs` (override "
        "--trainr.max_epochs=5): did you mean `trainer`? Every option: `mlstrategy fit --help`"
    )
    sections = {k: v for k, v in TINY_RECIPE.items() if k != "model"}
    (in_tmp / "modle.yaml").write_text(yaml.safe_dump({**sections, "modle": TINY_RECIPE["model"]}))
    message = _refused(capsys, "run", "modle.yaml")
    assert "Unknown section `modle`" in message and "(in modle.yaml)" in message
    assert "did you mean `model`?" in message
    evaluaton = _recipe(in_tmp, "evaluaton.yaml", evaluaton={"human_error": 0.01})
    message = _refused(capsys, "run", evaluaton)
    assert "did you mean `evaluation`?" in message and "(in evaluaton.yaml)" in message


def test_a_misspelt_option_of_the_verb_is_matched_against_the_verb_s_options(in_tmp, capsys):
    recipe = _recipe(in_tmp)
    assert _refused(capsys, "run", recipe, "--humen-error", "0.01") == (
        "error: Unknown option `--humen-error`: did you mean `--human-error`? "
        "Every option of `mlstrategy run`: `mlstrategy run --help`"
    )
    search = {"model.init_args.learning_rate": {"low": 0.01, "high": 0.5, "log": True}}
    tunable = _recipe(in_tmp, "tunable.yaml", search=search)
    message = _refused(capsys, "tune", tunable, "--trails", "3")
    assert "Unknown option `--trails`: did you mean `--trials`?" in message


def test_an_override_without_dashes_is_shown_with_them(in_tmp, capsys):
    recipe = _recipe(in_tmp)
    assert _refused(capsys, "run", recipe, "trainer.max_epochs=5") == (
        "error: `trainer.max_epochs=5` was given without `--`: overrides are written "
        "`--trainer.max_epochs=5`."
    )


def test_a_data_file_given_as_the_recipe_says_how_a_csv_is_used(in_tmp, capsys):
    rows = [f"{i * 0.1:.1f},{i % 3},{i % 2}" for i in range(150)]
    (in_tmp / "iris.csv").write_text("\n".join(["a,b,label", *rows]) + "\n")
    message = _refused(capsys, "run", "iris.csv")
    assert message.startswith("error: iris.csv is not a recipe: a recipe is a YAML mapping")
    assert "recipes/" in message and "mlstrategy.data.ArrayFile" in message
    assert "path: iris.csv" in message
    assert rows[5] not in message  # not the file's contents
    assert len(message) < 600


def test_trainer_keys_are_matched_in_full_not_by_prefix(in_tmp, capsys):
    recipe = _recipe(in_tmp)
    for override in ("--trainer.max_epoch=5", "--trainer.max_ep=7"):
        message = _refused(capsys, "run", recipe, override)
        key = override[2:].split("=")[0]
        assert f"Unknown key `{key}` (override {override}): did you mean" in message
        assert "`max_epochs`" in message


def test_the_class_hint_imports_nothing_a_recipe_may_not_name(in_tmp, monkeypatch, capsys):
    # A module next to the recipe that runs code when imported, and one inside a package a
    # recipe may name: the hint looks for close names in the second only.
    (in_tmp / "evil.py").write_text("open('imported', 'w').close()\nclass Net: ...\n")
    monkeypatch.syspath_prepend(str(in_tmp))
    from mlstrategy.runs.class_hints import close_classes

    assert close_classes("evil.Nett", None) == []
    assert close_classes("os.pathx", None) == []
    assert not (in_tmp / "imported").exists()
    assert close_classes("mlstrategy.modelz.DeepNt", None) == ["mlstrategy.models.DeepNet"]
    # Through the CLI, the misspelt local module is refused before anything imports it.
    err = _refused(capsys, "run", _recipe(in_tmp), "--model.class_path=evil.Nett")
    assert "evil.Nett" in err
    assert not (in_tmp / "imported").exists()


def test_an_import_error_inside_the_class_s_module_is_shown_as_it_is(in_tmp, monkeypatch, capsys):
    # An allowed module whose own import fails (a dependency missing): not a misspelt class.
    (in_tmp / "mynet.py").write_text("import no_such_dependency_xyz\nclass Net: ...\n")
    monkeypatch.syspath_prepend(str(in_tmp))
    recipe = _recipe(in_tmp)
    code = main(["run", "--allow-module", "mynet", recipe, "--model.class_path=mynet.Net"])
    err = " ".join(capsys.readouterr().err.split())
    assert code != 0 and "Traceback" not in err
    assert err == (
        "error: model: `mynet.Net` does not import: No module named 'no_such_dependency_xyz' "
        "(override --model.class_path=mynet.Net). Install what its module needs, or fix the "
        "module."
    )
