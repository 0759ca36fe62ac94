"""One checkpoint loader for every path: damaged files named, other models' checkpoints refused
before anything is built, and never torch's advice to load unsafely."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from conftest import run_cli_subprocess, write_recipe
from mlstrategy.cli import main
from mlstrategy.models import DeepNet, Head, LogisticRegression, MultiTaskNet, TransferNet
from mlstrategy.models.backbones import load_weights_file, registry_state_dict, source_module
from mlstrategy.runs.lightning_cli import build_run
from mlstrategy.safety import (
    UnsafeError,
    check_checkpoint_class,
    check_checkpoint_matches,
    load_checkpoint,
)

UNSAFE_ADVICE = ("weights_only", "safe_globals", "trusted source", "Traceback")
LOGISTIC = {
    "class_path": "mlstrategy.models.LogisticRegression",
    "init_args": {"optimizer": "gd", "learning_rate": 0.5},
}


def _data(source: str) -> dict:
    return {
        "class_path": "mlstrategy.data.ArrayDataModule",
        "init_args": {"source": {"class_path": source}, "batch_size": None},
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A finished 2-epoch fit of logistic regression on breast cancer: (its recipe, best.ckpt)."""
    root = tmp_path_factory.mktemp("trained")
    recipe = write_recipe(
        root / "tiny.yaml", LOGISTIC, _data("mlstrategy.data.BreastCancer"), {"max_epochs": 2}
    )
    cwd = Path.cwd()
    os.chdir(root)
    try:
        assert main(["fit", "--config", str(recipe)]) == 0
    finally:
        os.chdir(cwd)
    (best,) = root.glob("logs/tiny/*/checkpoints/best.ckpt")
    return recipe, best


def _damaged(kind: str, tmp_path: Path, good: Path) -> Path:
    data = good.read_bytes()
    path = tmp_path / f"{kind}.ckpt"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random":
        path.write_bytes(bytes(range(256)) * 8)
    elif kind == "text":
        path.write_text("model: not a checkpoint\n")
    elif kind == "corrupted":  # the zip's directory whole, a member's bytes overwritten
        path.write_bytes(data[:64] + b"\xff" * 64 + data[128:])
    elif kind == "legacy_truncated":
        torch.save({"w": torch.zeros(8)}, path, _use_new_zipfile_serialization=False)
        path.write_bytes(path.read_bytes()[:-20])
    return path


KINDS = ["empty", "truncated", "random", "text", "corrupted", "legacy_truncated"]


def _runs(root: Path) -> list[Path]:
    return [p for p in root.glob("logs/*/*") if p.is_dir()]


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_torch_cannot_read_is_called_damaged(kind, tmp_path, trained):
    path = _damaged(kind, tmp_path, trained[1])
    with pytest.raises(ValueError) as err:
        load_checkpoint(path)
    assert type(err.value) is ValueError  # damaged, not "unsafe"
    message = str(err.value)
    assert message.startswith(f"{path} is damaged or truncated")
    assert "Nothing from it was executed" in message
    assert not any(advice in message for advice in UNSAFE_ADVICE), message
    if kind == "empty":
        assert "(the file is empty)" in message


def test_a_pickle_that_runs_code_is_refused_without_the_unsafe_advice(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "x": Evil()}, path)
    with pytest.raises(UnsafeError) as err:
        load_checkpoint(path)
    assert "(posix.system)" in str(err.value) and "nothing from it was executed" in str(err.value)
    assert not any(advice in str(err.value) for advice in UNSAFE_ADVICE)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["missing", "truncated"])
def test_cli_test_with_a_missing_or_damaged_checkpoint_exits_2_and_leaves_no_run(
    kind, tmp_path, trained
):
    recipe, best = trained
    ckpt = tmp_path / "missing.ckpt" if kind == "missing" else _damaged(kind, tmp_path, best)
    result = run_cli_subprocess(
        "test", "--config", str(recipe), "--ckpt_path", str(ckpt), cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(ckpt) in errors[0]
    assert ("does not exist" if kind == "missing" else "damaged or truncated") in errors[0]
    assert not any(advice in result.stderr + result.stdout for advice in UNSAFE_ADVICE)
    assert _runs(tmp_path) == []  # no run folder, marked or not


@pytest.mark.parametrize("verb", ["validate", "predict"])
@pytest.mark.parametrize("kind", ["empty", "random"])
def test_every_plain_verb_reads_ckpt_path_with_the_one_loader(verb, kind, in_tmp, trained, capsys):
    ckpt = _damaged(kind, in_tmp, trained[1])
    assert main([verb, "--config", str(trained[0]), "--ckpt_path", str(ckpt)]) == 2
    assert "damaged or truncated" in capsys.readouterr().err
    assert _runs(in_tmp) == []


def test_a_checkpoint_of_another_model_class_names_both_and_builds_nothing(in_tmp, trained):
    digits = write_recipe(
        in_tmp / "digits.yaml",
        {"class_path": "mlstrategy.models.SoftmaxRegression"},
        _data("mlstrategy.data.Digits"),
    )
    result = run_cli_subprocess(
        "test", "--config", str(digits), "--ckpt_path", str(trained[1]), cwd=in_tmp
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "holds a LogisticRegression (mlstrategy.models.LogisticRegression)" in error
    assert "for inputs of shape (30,) with num_classes=2" in error
    assert "the recipe builds a SoftmaxRegression (mlstrategy.models.SoftmaxRegression)" in error
    assert _runs(in_tmp) == []


def test_a_checkpoint_for_other_inputs_names_both_shapes_and_leaves_no_run(in_tmp, trained, capsys):
    flower = write_recipe(in_tmp / "flower.yaml", LOGISTIC, _data("mlstrategy.data.Flower"))
    assert main(["test", "--config", str(flower), "--ckpt_path", str(trained[1])]) == 2
    err = capsys.readouterr().err
    assert "for inputs of shape (30,) with num_classes=2" in err
    assert "recipe builds a LogisticRegression" in err and "for inputs of shape (2,)" in err
    assert _runs(in_tmp) == []


def test_the_matching_checkpoint_still_tests_in_its_own_run_folder(trained, capsys):
    recipe, best = trained
    run_dir = best.parent.parent
    before = sorted(p.name for p in run_dir.parent.iterdir())
    assert main(["test", "--config", str(recipe), "--ckpt_path", str(best)]) == 0
    assert sorted(p.name for p in run_dir.parent.iterdir()) == before  # no new version


def test_resume_checks_the_last_checkpoint_against_the_built_model(trained, in_tmp):
    """What `run --resume` calls: the loader, then the match, on a real run's checkpoint."""
    recipe, best = trained
    checkpoint = load_checkpoint(best.with_name("last.ckpt"))
    check_checkpoint_matches(checkpoint, build_run([recipe], []).model)
    deep = {"class_path": "mlstrategy.models.DeepNet"}
    other = write_recipe(in_tmp / "deep.yaml", deep, _data("mlstrategy.data.BreastCancer"))
    with pytest.raises(ValueError, match=r"holds a LogisticRegression .* builds a DeepNet"):
        check_checkpoint_matches(checkpoint, build_run([other], []).model, "last.ckpt")


def test_same_class_other_sizes_or_weights_are_named():
    source = DeepNet((30,), 2, layer_dims=[4])
    checkpoint = {
        "hyper_parameters": {"_class_path": "mlstrategy.models.DeepNet", **source.hparams},
        "state_dict": source.state_dict(),
    }
    check_checkpoint_matches(checkpoint, DeepNet((30,), 2, layer_dims=[4]))
    with pytest.raises(ValueError, match=r"num_classes=2, but the recipe .* num_classes=3"):
        check_checkpoint_matches(checkpoint, DeepNet((30,), 3, layer_dims=[4]))
    with pytest.raises(ValueError, match=r"checkpoint \(4, 30\), model \(5, 30\)"):
        check_checkpoint_matches(checkpoint, DeepNet((30,), 2, layer_dims=[5]), "x.ckpt")
    check_checkpoint_class(checkpoint, "mlstrategy.models.deep.DeepNet")
    with pytest.raises(ValueError, match=r"^x\.ckpt holds a DeepNet"):
        check_checkpoint_class(checkpoint, "mlstrategy.models.ConvNet", "x.ckpt")
    # A checkpoint without hyperparameters (plain Lightning) is compared by its weights only.
    bare = {"state_dict": LogisticRegression((30,), 2).state_dict()}
    check_checkpoint_matches(bare, LogisticRegression((30,), 2))


def test_no_run_folder_is_left_when_the_trainer_cannot_be_built(in_tmp, trained):
    # The folder is reserved once the trainer knows its rank (rank 0 alone makes it), so a
    # trainer that cannot be built leaves none.
    recipe = write_recipe(in_tmp / "bad.yaml", LOGISTIC, _data("mlstrategy.data.BreastCancer"))
    assert main(["fit", "--config", str(recipe), "--trainer.strategy=no_such_strategy"]) == 2
    assert _runs(in_tmp) == []


# ----------------------------------------------------------- the loaders under the models
def test_transfer_and_pretrained_trunks_call_damaged_files_damaged(tmp_path, trained):
    path = _damaged("truncated", tmp_path, trained[1])
    with pytest.raises(ValueError, match=r"truncated\.ckpt is damaged or truncated"):
        source_module(path)
    with pytest.raises(ValueError, match="damaged or truncated"):
        TransferNet((30,), 2, backbone="checkpoint", checkpoint=str(path), strategy="freeze")
    with pytest.raises(ValueError, match="damaged or truncated"):
        MultiTaskNet((30,), {"a": Head()}, trunk="pretrained", pretrained=str(path))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_damaged_weights_file_is_called_damaged(tmp_path, suffix):
    from safetensors.torch import save_file

    path = tmp_path / f"w{suffix}"
    state = {"w": torch.zeros(64, 64)}
    torch.save(state, path) if suffix == ".pth" else save_file(state, str(path))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"w\.\w+ is damaged or truncated"):
        load_weights_file(path)


def test_a_damaged_file_in_the_torch_hub_cache_says_to_download_it_again(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "resnet18-f37072fd.pth").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ValueError, match=r"damaged or truncated.*Delete it and download it again"):
        registry_state_dict("resnet18", "DEFAULT")
