"""Refusing a stranger's code: malicious pickles, crafted hyperparameters, foreign class paths."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
import yaml

from mlstrategy.safety import (
    UnsafeError,
    allow_modules,
    check_checkpoint_hparams,
    check_recipe,
    load_checkpoint,
    restrict_jsonargparse_imports,
)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def no_allowed_modules():
    """Whatever a test allows for the process is taken back afterwards."""
    yield
    allow_modules([])


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Evil(marker)}, ckpt)
    refused = r"\(posix\.system\).*refused and nothing from it was"
    with pytest.raises(UnsafeError, match=refused) as err:
        load_checkpoint(ckpt)
    assert "weights_only" not in str(err.value) and "safe_globals" not in str(err.value)
    assert not marker.exists()
    # Raw pickle (not torch's zip format): torch cannot even parse it; still nothing runs.
    raw = tmp_path / "evil.pt"
    raw.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(ValueError, match=r"damaged or truncated.*Nothing from it was executed"):
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


def test_checkpoint_hparams_are_vetted_at_any_depth(tmp_path):
    nested = {"optim": [{"init_args": {"inner": {"class_path": "this.Source"}}}]}
    with pytest.raises(UnsafeError, match=r"'this\.Source'.*--allow-module this"):
        check_checkpoint_hparams(nested)
    ckpt = tmp_path / "deep.ckpt"
    crafted = {"datamodule_hyper_parameters": {"source": {"class_path": "subprocess.Popen"}}}
    torch.save(crafted, ckpt)
    with pytest.raises(UnsafeError, match=rf"The checkpoint {ckpt}, in its hyperparameters,"):
        load_checkpoint(ckpt)
    # Plain strings are fine: a repr, a file name, a metric, a folder.
    check_checkpoint_hparams({"source": "BreastCancer()", "p": "best.ckpt", "m": "cost/dev"})


def test_recipe_class_outside_allowed_modules_is_refused(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "model": {"class_path": "mlstrategy.models.LogisticRegression"},
                "trainer": {"callbacks": [{"class_path": "json.Hook", "init_args": {}}]},
            }
        )
    )
    with pytest.raises(UnsafeError, match=rf"^{recipe} names the class 'json\.Hook'.*module json"):
        check_recipe([recipe], [])
    check_recipe([recipe], [], allow=["json"])
    with pytest.raises(UnsafeError, match=r"the option --model=subprocess\.Popen"):
        check_recipe([], ["--model=subprocess.Popen"])
    # File names and metric names are not class paths.
    check_recipe(
        [], ["--data.init_args.source.init_args.path=data.csv", "--checkpoint.monitor=cost/dev"]
    )


@pytest.mark.parametrize(
    "token",
    [
        "--data.init_args.source=this.Source",  # not a class key, still imported
        '--trainer.callbacks+={"class_path": "this.Hook"}',  # JSON in a list append
        '--data.init_args.source={"class_path": "this.Src", "init_args": {}}',
        "--data.init_args.augment=[{class_path: this.Flip}]",  # a YAML flow list
        '--model={"init_args": {"deep": [[{"class_path": "this.X"}]]}}',  # any depth
        "--model.help=this.Net",
    ],
)
def test_every_string_of_an_override_is_vetted(token):
    with pytest.raises(UnsafeError, match=r"'this\.\w+'.*--allow-module this"):
        check_recipe([], [token])


def test_a_value_given_after_its_flag_is_vetted_and_named_with_it():
    with pytest.raises(UnsafeError, match=r"^the option --model this\.Net names"):
        check_recipe([], ["--model", "this.Net"])


def test_a_file_an_override_or_a_recipe_names_is_read_and_vetted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"class_path": "this.Src"}))
    with pytest.raises(UnsafeError, match=r"data\.yaml \(named by the option --data=data\.yaml\)"):
        check_recipe([], ["--data=data.yaml"])
    # A recipe naming a file next to it (jsonargparse reads it relative to the recipe).
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "source.json").write_text(json.dumps({"class_path": "this.Src"}))
    (sub / "r.yaml").write_text(yaml.safe_dump({"data": {"init_args": {"source": "source.json"}}}))
    with pytest.raises(UnsafeError, match=r"source\.json \(named by .*r\.yaml\)"):
        check_recipe([sub / "r.yaml"], [])
    # Files that name each other are each read once.
    (tmp_path / "a.yaml").write_text("x: b.yaml\n")
    (tmp_path / "b.yaml").write_text("x: a.yaml\n")
    check_recipe([tmp_path / "a.yaml"], [])


def test_a_dotted_name_whose_top_is_no_module_is_harmless():
    check_recipe([], ["--x=no_such_module_here.Net", "--y=best.ckpt", "--z=1.5", "--w=.nan"])


def test_code_running_callables_inside_torch_need_their_own_allow():
    with pytest.raises(UnsafeError, match=r"torch\.hub downloads.*--allow-module torch\.hub"):
        check_recipe([], ["--trainer.callbacks+=torch.hub.load"])
    check_recipe([], ["--trainer.callbacks+=torch.hub.load"], allow=["torch.hub"])
    check_recipe([], ["--optimizer=torch.optim.Adam"])


def test_a_missing_file_that_looks_like_a_module_says_so():
    with pytest.raises(UnsafeError, match=r"If you meant the file 'json\.yaml', it does not"):
        check_recipe([], ["--data=json.yaml"])


def test_modules_allowed_for_the_process_reach_every_check(tmp_path, no_allowed_modules):
    ckpt = tmp_path / "mine.ckpt"
    torch.save({"hyper_parameters": {"_class_path": "json.Net"}}, ckpt)
    with pytest.raises(UnsafeError):
        load_checkpoint(ckpt)
    allow_modules(["json"])
    assert load_checkpoint(ckpt)["hyper_parameters"] == {"_class_path": "json.Net"}
    check_recipe([], ["--model=json.Net"])
    allow_modules([])
    with pytest.raises(UnsafeError):
        check_recipe([], ["--model=json.Net"])


def test_jsonargparse_itself_refuses_what_the_vetting_refuses(tmp_path, monkeypatch):
    """The second guard: a value the vetting never saw is still not imported."""
    from collections.abc import Callable

    from jsonargparse import ArgumentParser

    (tmp_path / "second_guard_mod.py").write_text(
        f"open({str(tmp_path / 'imported')!r}, 'w').close()\ndef fn(): ...\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    restrict_jsonargparse_imports()
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--fn", type=Callable)
    with pytest.raises(Exception, match=r"Importing 'second_guard_mod\.fn' is not allowed"):
        parser.parse_args(["--fn=second_guard_mod.fn"])
    assert not (tmp_path / "imported").exists()
    assert parser.parse_args(["--fn=torch.sigmoid"]).fn is torch.sigmoid
