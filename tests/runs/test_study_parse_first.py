"""``mlstrategy run STUDY_DIR``: every recipe of the folder is checked before the first fit."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import TINY_RECIPE
from mlstrategy.cli import main
from mlstrategy.runs.errors import ConfigError
from mlstrategy.runs.recipes import recipe_configs
from mlstrategy.runs.study import run_study


def _study(root: Path) -> Path:
    """Three recipes on a shared base; the last two hold a typo each."""
    study = root / "study"
    study.mkdir()
    (study / "_base.yaml").write_text(yaml.safe_dump(TINY_RECIPE))
    (study / "a_fine.yaml").write_text(yaml.safe_dump({"trainer": {"max_epochs": 1}}))
    typo = {"model": {"init_args": {"learnig_rate": 0.1}}}
    (study / "b_typo.yaml").write_text(yaml.safe_dump(typo))
    (study / "c_typo.yaml").write_text(yaml.safe_dump({"trainer": {"max_epoch": 2}}))
    return study


def test_a_typo_in_any_recipe_of_a_study_fails_before_any_training(in_tmp, capsys):
    study = _study(in_tmp)
    assert main(["run", str(study)]) == 2
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert "The study" in err and "2 recipe(s) that do not parse, so nothing was trained" in err
    assert f"{study / 'b_typo.yaml'}: Unknown key `model.init_args.learnig_rate`" in err
    assert "did you mean `learning_rate`" in err
    assert f"{study / 'c_typo.yaml'}: Unknown key `trainer.max_epoch`" in err
    assert "a_fine.yaml" not in err and "Traceback" not in err
    assert not (in_tmp / "logs").exists()  # a_fine.yaml, first in name order, did not train


def test_an_override_every_recipe_refuses_is_said_once(in_tmp):
    # The same error from every recipe is the command line's: said once, as for one recipe
    # (and the CLI then matches a misspelt option of the verb's own, --humen-error).
    study = _study(in_tmp)
    for name in ("b_typo.yaml", "c_typo.yaml"):
        (study / name).unlink()
    (study / "d_fine.yaml").write_text(yaml.safe_dump({"trainer": {"max_epochs": 2}}))
    with pytest.raises(ConfigError) as err:
        run_study(
            study, recipe_configs(study), ["--trainer.max_epochz=1"], logs_dir=in_tmp / "logs"
        )
    message = str(err.value)
    assert message.count("override --trainer.max_epochz=1") == 1
    assert "did you mean `max_epochs`" in message and "recipe(s)" not in message
    assert not (in_tmp / "logs").exists()
