"""Vetting sees every class name before anything is imported, and empty recipes say so.

A marker package writes a file the moment it is imported. It is named in every place
LightningCLI accepts a class (recipe, override, ``--config`` file, study base, a file a value
names, a checkpoint's hyperparameters); each command must exit 2 with one ``error:`` line
that names it, and the marker must never appear.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO, TINY_RECIPE, run_cli_subprocess
from mlstrategy.cli import main
from mlstrategy.runs.recipes import recipe_configs, vet_command

MARKER = "marker_mod"
GOOD = TINY_RECIPE


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``marker_mod`` on the path (this process and its children); returns the file its
    import would write. The working directory is an empty ``work/``."""
    lib = tmp_path / "lib" / MARKER
    lib.mkdir(parents=True)
    flag = tmp_path / "IMPORTED"
    (lib / "__init__.py").write_text(
        f"open({str(flag)!r}, 'w').close()\n"
        "from lightning.pytorch import Callback\n\n\n"
        "class Hook(Callback): ...\n\n\n"
        "class X: ...\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "lib"))
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return flag


def _recipe(path: Path, *edits: tuple[str, object]) -> Path:
    """``GOOD`` with each ``("a.b.c", value)`` set, written to ``path``."""
    tree = copy.deepcopy(GOOD)
    for dotted, value in edits:
        *parents, last = dotted.split(".")
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    path.write_text(yaml.safe_dump(tree))
    return path


def _ckpt(path: Path, hparams: dict) -> Path:
    torch.save({"state_dict": {}, "hyper_parameters": hparams}, path)
    return path


def _study(work: Path) -> Path:
    study = work / "study"
    study.mkdir()
    (study / "_base.yaml").write_text(
        yaml.safe_dump({"trainer": {"callbacks": [{"class_path": f"{MARKER}.Hook"}]}})
    )
    _recipe(study / "a.yaml")
    return study


C = f"{MARKER}.X"
Place = Callable[[Path], list[str]]
PLACES: dict[str, Place] = {
    "model class_path": lambda w: ["run", str(_recipe(w / "r.yaml", ("model.class_path", C)))],
    "data class_path": lambda w: ["fit", "--config", str(_recipe(w / "r.yaml", ("data", C)))],
    "trainer profiler": lambda w: [
        "fit", "--config", str(_recipe(w / "r.yaml", ("trainer.profiler", {"class_path": C})))
    ],
    "data source": lambda w: [
        "run", str(_recipe(w / "r.yaml", ("data.init_args.source.class_path", C)))
    ],
    "nested init_args": lambda w: [
        "run",
        str(
            _recipe(
                w / "r.yaml",
                ("data.init_args.source", {
                    "class_path": "mlstrategy.data.Flower",
                    "init_args": {"noise": {"class_path": "torch.nn.Sequential",
                                            "init_args": {"inner": [{"class_path": C}]}}},
                }),
            )
        ),
    ],
    "callbacks list": lambda w: [
        "fit", "--config", str(_recipe(w / "r.yaml", ("trainer.callbacks", [
            {"class_path": "lightning.pytorch.callbacks.EarlyStopping",
             "init_args": {"monitor": "cost/dev"}},
            {"class_path": f"{MARKER}.Hook"},
        ])))
    ],
    "logger": lambda w: [
        "fit", "--config", str(_recipe(w / "r.yaml", ("trainer.logger", {"class_path": C})))
    ],
    "plugins": lambda w: ["fit", "--config", str(_recipe(w / "r.yaml", ("trainer.plugins", [C])))],
    "strategy": lambda w: ["fit", "--config", str(_recipe(w / "r.yaml", ("trainer.strategy", C)))],
    "augmentation list": lambda w: [
        "run", str(_recipe(w / "r.yaml", ("data.init_args.augment", [
            {"class_path": "torch.nn.Identity"}, {"class_path": C}
        ])))
    ],
    "short class_path next to dotted": lambda w: [
        "run",
        str(_recipe(w / "r.yaml", ("model", {"class_path": "LogisticRegression"}),
                    ("data.init_args.source", {"class_path": C}))),
    ],
    "JSON override": lambda w: [
        "fit", "--config", str(_recipe(w / "r.yaml")),
        f'--data.init_args.source={{"class_path": "{C}", "init_args": {{}}}}',
    ],
    "+= list override": lambda w: [
        "fit", "--config", str(_recipe(w / "r.yaml")),
        f'--trainer.callbacks+={{"class_path": "{MARKER}.Hook"}}',
    ],
    "override on a key that is no class key": lambda w: [
        "run", str(_recipe(w / "r.yaml")), f"--data.init_args.source={C}"
    ],
    "value after its flag": lambda w: [
        "fit", "--config", str(_recipe(w / "r.yaml")), "--model.class_path", C
    ],
    "class help": lambda w: ["fit", "--config", str(_recipe(w / "r.yaml")), f"--model.help={C}"],
    "--config second file": lambda w: [
        "fit", "--config", str(_recipe(w / "good.yaml")),
        "--config", str(_recipe(w / "evil.yaml", ("trainer.callbacks", [{"class_path": C}]))),
    ],
    "--config as a YAML string": lambda w: [
        "fit", "--config", str(_recipe(w / "good.yaml")),
        f"--config={{trainer: {{callbacks: [{{class_path: {MARKER}.Hook}}]}}}}",
    ],
    "_base.yaml of a study (one recipe)": lambda w: ["run", str(_study(w) / "a.yaml")],
    "_base.yaml of a study (whole)": lambda w: ["run", str(_study(w))],
    "--data=file.yaml": lambda w: [
        "fit", "--config", str(_recipe(w / "r.yaml")),
        f"--data={_write(w / 'data.yaml', {'class_path': C})}",
    ],
    "a file a recipe names": lambda w: [
        "fit", "--config",
        str(_recipe(w / "r.yaml", ("data.init_args.source", f"{_write(w / 'src.yaml', C).name}"))),
    ],
    "checkpoint hparams (test --ckpt_path)": lambda w: [
        "test", "--config", str(_recipe(w / "r.yaml")), "--ckpt_path",
        str(_ckpt(w / "best.ckpt", {"_class_path": "mlstrategy.models.LogisticRegression",
                                    "optimizer": {"deep": [{"class_path": C}]}})),
    ],
    "checkpoint hparams (transfer checkpoint:)": lambda w: [
        "fit", "--config",
        str(_recipe(w / "r.yaml", ("model", {
            "class_path": "mlstrategy.models.TransferNet",
            "init_args": {"backbone": "checkpoint", "strategy": "freeze",
                          "checkpoint": str(_ckpt(w / "src.ckpt", {
                              "_class_path": "mlstrategy.models.DeepNet", "x": {"class_path": C}
                          }))},
        }))),
    ],
    "learning-curve verb": lambda w: [
        "learning-curve", str(_recipe(w / "r.yaml", ("data.init_args.source.class_path", C)))
    ],
}  # fmt: skip


def _write(path: Path, content: object) -> Path:
    path.write_text(yaml.safe_dump(content))
    return path


def _one_error(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.mark.parametrize("place", PLACES)
def test_a_class_anywhere_is_refused_before_import_in_process(place, marker, capsys):
    argv = PLACES[place](Path.cwd())
    assert main(argv) == 2
    error = _one_error(capsys.readouterr().err)
    assert f"'{MARKER}." in error and f"--allow-module {MARKER}" in error
    assert MARKER not in sys.modules
    assert not marker.exists()
    assert not (Path.cwd() / "logs").exists()  # refused before any run folder


@pytest.mark.slow
@pytest.mark.parametrize("place", PLACES)
def test_a_class_anywhere_is_refused_by_the_console_script(place, marker):
    result = run_cli_subprocess(*PLACES[place](Path.cwd()), cwd=Path.cwd())
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert f"--allow-module {MARKER}" in _one_error(result.stderr)
    assert not marker.exists()


@pytest.mark.slow
def test_the_marker_is_imported_when_allowed_so_its_absence_means_something(marker):
    argv = PLACES["callbacks list"](Path.cwd())
    result = run_cli_subprocess(*argv, "--allow-module", MARKER, "--print_config", cwd=Path.cwd())
    assert result.returncode == 0, result.stderr
    assert f"class_path: {MARKER}.Hook" in result.stdout
    assert marker.exists()


@pytest.mark.slow
def test_a_stdlib_module_with_side_effects_is_refused_too(tmp_path):
    recipe = _recipe(tmp_path / "r.yaml")
    result = run_cli_subprocess(
        "fit", "--config", str(recipe), "--data.init_args.source=this.Source", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "Beautiful is better than ugly" not in result.stdout + result.stderr
    error = _one_error(result.stderr)
    assert "'this.Source'" in error and "--allow-module this" in error


def _all_recipes() -> list[Path]:
    files = [p for p in (REPO / "recipes").rglob("*.yaml") if not p.name.startswith("_")]
    folders = {p.parent for p in files}
    return sorted(files) + sorted(folders)


@pytest.mark.parametrize("path", _all_recipes(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_recipe_and_study_passes_vetting(path):
    vet_command("run", [str(path)], [])
    for configs in recipe_configs(path):
        vet_command("fit", [arg for c in configs for arg in ("--config", str(c))], [])


# ------------------------------------------------------------------------------ empty recipes
@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "r.yaml is empty."),
        ("# a recipe, one day\n\n# more to come\n", "r.yaml holds only comments."),
        ("{}\n", "r.yaml is an empty recipe ({})."),
        ("- model\n- data\n", "r.yaml, line 1: holds a list, not a mapping."),
        ("\n\njust words\n", "r.yaml, line 3: holds the value 'just words', not a mapping."),
        ("model:\n  class_path: x\n  init_args: [1, 2\n", "r.yaml, line 4: not valid YAML"),
        ("model: a\n\tdata: b\n", "r.yaml, line 2: not valid YAML"),
    ],
)
def test_a_recipe_with_nothing_to_run_says_what_a_recipe_holds(text, says, in_tmp, capsys):
    recipe = in_tmp / "r.yaml"
    recipe.write_text(text)
    for argv in (["run", str(recipe)], ["fit", "--config", str(recipe)]):
        assert main(argv) == 2
        error = _one_error(capsys.readouterr().err)
        assert says in error, error
        for part in ("model:", "data:", "trainer:", "recipes/quickstart.yaml"):
            assert part in error


def test_an_empty_recipe_gets_one_line_not_a_usage_dump(tmp_path):
    (tmp_path / "r.yaml").write_text("# nothing yet\n")
    result = run_cli_subprocess("fit", "--config", "r.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "usage:" not in result.stderr + result.stdout
    assert "Unexpected config" not in result.stderr
    assert "r.yaml holds only comments" in _one_error(result.stderr)


def test_an_empty_mapping_on_top_of_a_base_is_a_recipe(tmp_path):
    """In a study, ``{}`` means "the base as it is": only a recipe with nothing at all fails."""
    (tmp_path / "_base.yaml").write_text(yaml.safe_dump(GOOD))
    (tmp_path / "as_is.yaml").write_text("{}\n")
    vet_command("run", [str(tmp_path / "as_is.yaml")], [])
    vet_command("run", [str(tmp_path)], [])
