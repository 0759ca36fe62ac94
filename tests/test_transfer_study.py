"""The transfer study (recipes/transfer/): pretrain on digits 0-4, then four ways to learn 5-9,
one table; and fine-tuning on an image folder through `mlstrategy run`."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO
from mlstrategy.cli import main

STUDY = REPO / "recipes" / "transfer"
TARGETS = ["1_scratch", "2_freeze", "3_finetune", "4_gradual"]


def _study(in_tmp: Path) -> Path:
    """The study's recipes copied into the working directory (its logs land there too)."""
    return Path(shutil.copytree(STUDY, in_tmp / "recipes" / "transfer"))


def _metrics(logs: Path, recipe: str) -> dict:
    (path,) = (logs / recipe).glob("*/metrics.json")
    return json.loads(path.read_text())


def _backbone(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("net.features.")}


def test_a_target_recipe_before_its_pretraining_says_to_run_the_study(in_tmp, capsys):
    study = _study(in_tmp)
    assert main(["run", str(study / "2_freeze.yaml")]) == 2
    err = capsys.readouterr().err
    assert "logs/transfer/0_pretrain" in err and "mlstrategy run recipes/transfer/" in err
    assert not any((in_tmp / "logs").glob("**/checkpoints/*.ckpt"))  # nothing was trained


@pytest.mark.slow
def test_study_pretrains_first_and_transfers_exactly_its_weights(in_tmp, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the table's every column, unabbreviated
    study = _study(in_tmp)
    fast = ["--trainer.max_epochs=2", "--evaluation.latency_repeats=2"]
    assert main(["run", str(study), *fast]) == 0
    logs = in_tmp / "logs" / "transfer"
    pretrain = _metrics(logs, "0_pretrain")
    runs = {name: _metrics(logs, name) for name in TARGETS}
    source = _backbone(pretrain["best_checkpoint"])
    assert source and pretrain["splits"]["test"]["n"] == 180  # 20% of the 901 digits 0-4
    for name in ("2_freeze", "3_finetune", "4_gradual"):
        assert runs[name]["splits"]["test"]["n"] == 846  # 896 digits 5-9 minus 10 labelled each
    # Freeze trains the head only: its backbone is the pretrained one, bit for bit.
    frozen = _backbone(runs["2_freeze"]["best_checkpoint"])
    assert frozen.keys() == source.keys()
    assert all(torch.equal(frozen[k], v) for k, v in source.items())
    assert runs["2_freeze"]["trainable_params"] == 32 * 4 * 4 * 5 + 5
    scratch = _backbone(runs["1_scratch"]["best_checkpoint"])
    assert not torch.equal(scratch["net.features.0.weight"], source["net.features.0.weight"])
    assert runs["1_scratch"]["trainable_params"] == runs["1_scratch"]["params"]
    out = capsys.readouterr().out
    table = out[out.index("study ") :]
    for column in ("test/f1", "test/error", "fit_seconds", "trainable_params"):
        assert column in table
    assert all(name in table for name in TARGETS)
    assert "0_pretrain" not in table.split("winner:")[0]  # it prepared the others; no candidate


def test_full_study_transfer_beats_scratch_with_few_labels():
    """The README's numbers: with 10 labels per class, a pretrained backbone wins on test F1.

    `make figures` runs the whole study (seeds 0 and 1) into benchmarks/figures.json, which
    the README's table is rendered from; this checks those measured runs.
    """
    measured = json.loads((REPO / "benchmarks" / "figures.json").read_text())
    for seed, runs in measured["sections"]["transfer"]["figures"].items():
        f1 = {name: runs[name]["splits"]["test"]["f1"] for name in TARGETS}
        assert max(f1["2_freeze"], f1["3_finetune"]) > f1["1_scratch"] + 0.01, (seed, f1)


@pytest.mark.slow
def test_fine_tuning_a_torchvision_backbone_on_an_image_folder(in_tmp, capsys):
    from torchvision.models import get_model

    from mlstrategy.data import DigitImages
    from mlstrategy.data.images import write_image_folder

    write_image_folder(DigitImages(size=32, classes=[1, 2]).load(0), in_tmp / "imgs", 12)
    torch.manual_seed(0)
    torch.save(get_model("resnet18").state_dict(), in_tmp / "resnet18.pth")
    recipe = yaml.safe_load((REPO / "recipes" / "transfer_resnet18_imagefolder.yaml").read_text())
    recipe["model"]["init_args"].update(weights=None, weights_path="resnet18.pth")
    recipe["data"]["init_args"].update(
        root="imgs", image_size=32, resize_size=36, num_workers=0, batch_size=8
    )
    recipe["trainer"].update(max_epochs=1, enable_progress_bar=False)
    (in_tmp / "ft.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["run", "ft.yaml", "--evaluation.latency_repeats=2"]) == 0
    metrics = _metrics(in_tmp / "logs", "ft")
    assert {s: metrics["splits"][s]["n"] for s in ("train", "dev", "test")} == {
        "train": 14,
        "dev": 5,
        "test": 5,
    }
    # ResNet-18 without its 1000-way layer, and one sigmoid output unit for two classes.
    assert metrics["trainable_params"] == metrics["params"] == 11_176_512 + 512 + 1

    # `mlstrategy predict` on a folder of new images writes id, predicted, p_<class> per image.
    run_dir = Path(metrics["run_dir"])
    photos = in_tmp / "imgs" / "2"
    args = [f"--config={run_dir / 'config.yaml'}", f"--ckpt_path={metrics['best_checkpoint']}"]
    assert main(["predict", *args, f"--data.init_args.predict_dir={photos}"]) == 0
    with (run_dir / "lightning_predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [str(p) for p in sorted(photos.iterdir())]
    assert {r["predicted"] for r in rows} <= {"1", "2"}
    assert all(0.5 <= float(r[f"p_{r['predicted']}"]) <= 1 for r in rows)  # the larger of two
