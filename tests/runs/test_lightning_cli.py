"""The toolkit's LightningCLI: plain verbs compose a study's base, determinism that runs on CUDA."""

from __future__ import annotations

import torch
import yaml

from conftest import REPO
from mlstrategy.cli import main
from mlstrategy.runs.lightning_cli import build_run
from mlstrategy.runs.recipes import recipe_configs


def test_plain_fit_composes_a_study_recipe_on_its_base_as_run_does(in_tmp):
    recipe = REPO / "recipes" / "deep" / "init" / "he.yaml"
    base = yaml.safe_load((recipe.parent / "_base.yaml").read_text())
    assert "data" in base and "data" not in yaml.safe_load(recipe.read_text())
    code = main(["fit", "--config", str(recipe), "--trainer.max_epochs=1",
                 "--trainer.enable_progress_bar=false"])  # fmt: skip
    assert code == 0
    (config,) = in_tmp.glob("logs/he/*/config.yaml")
    saved = yaml.safe_load(config.read_text())
    # The base's data section reached the parser, and the recipe's own init won.
    assert saved["data"]["class_path"] == base["data"]["class_path"]
    assert saved["model"]["init_args"]["init"] == "he"


def test_determinism_is_on_but_only_warns_where_cuda_has_no_deterministic_kernel(in_tmp):
    recipe = REPO / "recipes" / "quickstart.yaml"
    cli = build_run(recipe_configs(recipe)[0], ["--trainer.logger=false"])
    assert cli.trainer is not None
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
