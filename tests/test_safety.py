"""Refusing a stranger's code: malicious pickles, crafted hyperparameters, foreign class paths."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
import yaml

from mlstrategy.safety import UnsafeError, check_checkpoint_hparams, check_recipe, load_checkpoint


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Evil(marker)}, ckpt)
    with pytest.raises(UnsafeError, match="refused and nothing from it was executed"):
        load_checkpoint(ckpt)
    assert not marker.exists()
    # Raw pickle (not torch's zip format) too.
    raw = tmp_path / "evil.pt"
    raw.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(UnsafeError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_checkpoint_naming_os_system_as_instantiator_is_refused(tmp_path):
    ckpt = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"_instantiator": "os.system"}}, ckpt)
    with pytest.raises(UnsafeError, match=r"'os\.system' as the function that builds"):
        load_checkpoint(ckpt)
    check_checkpoint_hparams(
        {
            "_instantiator": "lightning.pytorch.cli.instantiate_module",
            "_class_path": "mlstrategy.models.LogisticRegression",
        }
    )
    with pytest.raises(UnsafeError, match=r"--allow-module mypkg"):
        check_checkpoint_hparams({"_class_path": "mypkg.Net"})
    check_checkpoint_hparams({"_class_path": "mypkg.Net"}, allow=["mypkg"])


def test_recipe_class_outside_allowed_modules_is_refused(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "model": {"class_path": "mlstrategy.models.LogisticRegression"},
                "trainer": {"callbacks": [{"class_path": "evilpkg.Hook", "init_args": {}}]},
            }
        )
    )
    with pytest.raises(UnsafeError, match=r"'evilpkg\.Hook'.*--allow-module evilpkg"):
        check_recipe([recipe], [])
    check_recipe([recipe], [], allow=["evilpkg"])
    with pytest.raises(UnsafeError, match=r"the option --model=subprocess\.Popen"):
        check_recipe([], ["--model=subprocess.Popen"])
    # File names and metric names are not class paths.
    check_recipe(
        [], ["--data.init_args.source.init_args.path=data.csv", "--checkpoint.monitor=cost/dev"]
    )
