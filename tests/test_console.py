"""The console at 80 columns: the model summary lists the network's layers, the progress bar
says what it is doing, and ``compare`` keeps its status column and winner in view."""

from __future__ import annotations

import re

import pytest
import rich

from conftest import write_fake_run
from mlstrategy.callbacks.progress import RunProgressBar, network_rows, short_metrics
from mlstrategy.cli import main


def test_the_summary_rows_are_the_network_s_layers_with_their_parameter_counts():
    from mlstrategy.models import DeepNet

    model = DeepNet(input_shape=(30,), num_classes=2, layer_dims=[8])
    rows = network_rows(model)
    names = [name for name, _, _ in rows]
    assert not any("cost" in n or "metric" in n for n in names)  # no torchmetrics objects
    params = {name: count for name, _, count in rows}
    assert params["net"] == sum(p.numel() for p in model.parameters()) == 30 * 8 + 8 + 8 + 1
    # The layers themselves, not only their containers: W1, b1, then W2, b2.
    assert [(kind, c) for _, kind, c in rows if kind in ("Linear", "ReLU")] == [
        ("Linear", 30 * 8 + 8),
        ("ReLU", 0),
        ("Linear", 8 + 1),
    ]


def test_the_progress_bar_metrics_are_one_short_cost_entry_without_v_num():
    shown = short_metrics({"v_num": 1016, "cost/dev": 0.039215, "cost/train": 0.0608123})
    assert shown == {"cost": "train 0.0608, dev 0.0392"}
    assert short_metrics({"cost/test": 1.0, "cost/train_dev": 2.0, "lr": 1e-3}) == {
        "cost": "train_dev 2, test 1",
        "lr": "0.001",
    }


def test_the_bar_names_the_epoch_from_one_and_the_split_it_scores():
    from mlstrategy.evaluation.scoring import SplitScorer

    bar = RunProgressBar()

    class Trainer:
        max_epochs = 200

        def __init__(self, callbacks: list) -> None:
            self.callbacks = callbacks

    bar._trainer = Trainer([bar, SplitScorer("dev")])  # type: ignore[assignment]
    assert bar._get_train_description(0) == "epoch 1/200"
    assert bar._get_train_description(199) == "epoch 200/200"
    assert bar.test_description == "scoring dev"
    bar._trainer = Trainer([bar])  # type: ignore[assignment]
    assert bar.test_description == "scoring"


@pytest.mark.slow  # one ~2 s run
def test_a_run_at_80_columns_shows_layers_epochs_and_splits_and_no_noise(
    tiny_recipe, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(rich, "_console", None)  # Lightning's bar prints on rich's console
    overrides = ["--trainer.enable_progress_bar=true", "--trainer.enable_model_summary=true"]
    assert main(["run", str(tiny_recipe), *overrides]) == 0
    out = capsys.readouterr().out
    assert re.search(r"net\.1\s+│ Linear\s+│\s+31 │", out), out  # w (30) and b
    assert "31 parameters (31 trainable)" in out
    assert "epoch 3/3" in out and "cost: train " in out
    assert all(f"scoring {split}" in out for split in ("train", "dev", "test"))
    for noise in ("it/s", "v_num", "FLOPs", "train mode", "train_cost", "Testing", "Epoch "):
        assert noise not in out, noise
    bars = [line for line in out.splitlines() if "━" in line and "┃" not in line]
    assert bars and all(len(line) <= 80 for line in bars), bars


def test_compare_at_80_columns_keeps_the_status_column_and_the_winner(in_tmp, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    errors = {"train": 0.05, "dev": 0.10, "test": 0.12}
    study = in_tmp / "logs" / "flowers"
    write_fake_run(study / "flower_wide_net" / "1", errors, f1={"dev": 0.855}, params=12_345)
    slow = study / "flower_deep_dropout_net" / "1"
    write_fake_run(slow, errors, f1={"dev": 0.87}, latency_ms=7.5, params=123_456)
    write_fake_run(study / "flower_logistic" / "1", {**errors, "dev": 0.36}, f1={"dev": 0.61})
    argv = ["compare", str(study), "--optimize", "dev/f1", "--satisfy", "latency_ms<=5"]
    assert main([*argv, "--satisfy", "dev/recall>=0.8"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    header = next(line for line in lines if "status" in line)
    assert header.rstrip().endswith("┃") and "params" in header
    winner = next(line for line in lines if "0.855" in line)
    assert winner.split("│")[-2].strip() == "winner"
    assert "123456" in out and "12345 " in out  # numbers whole, never cut
    failing = next(line for line in lines if "0.87 " in line)
    assert failing.split("│")[-2].strip() == "fails"
    assert "winner: flower_wide_net (dev/f1 = 0.855" in " ".join(out.split())


def test_a_recipe_path_with_brackets_prints_as_it_is_and_the_run_finishes(
    tiny_recipe, capsys, in_tmp
):
    """Paths went through rich's markup: "a[/b].yaml" raised MarkupError once the run had
    started, and "[x]" vanished from the lines that name the run folder."""
    recipe = in_tmp / "a[" / "b].yaml"
    recipe.parent.mkdir()
    recipe.write_text(tiny_recipe.read_text())
    assert main(["run", "a[/b].yaml"]) == 0  # relative: a line that rich need not wrap
    out = " ".join(capsys.readouterr().out.split())
    (run_dir,) = (in_tmp / "logs" / "b]").iterdir()
    assert f"run a[/b].yaml -> logs/b]/{run_dir.name}" in out
    assert f"run folder: logs/b]/{run_dir.name}" in out
    assert (run_dir / "metrics.json").is_file()


def test_compare_shows_run_names_with_brackets_as_they_are(in_tmp, capsys):
    """Table cells and the winner's line went through rich's markup: "net[wide]" showed as
    "net" (and a tag rich knows, "[bold]", would have styled the rest)."""
    errors = {"train": 0.05, "dev": 0.10, "test": 0.12}
    study = in_tmp / "logs" / "nets"
    write_fake_run(study / "net[wide]" / "1", errors, f1={"dev": 0.9})
    write_fake_run(study / "net[bold]" / "1", errors, f1={"dev": 0.8})
    assert main(["compare", str(study), "--optimize", "dev/f1"]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("│")]
    assert [line.split("│")[1].strip() for line in table] == ["net[wide]", "net[bold]"]
    assert "winner: net[wide] (dev/f1 = 0.9, test/error = 0.12) · logs/nets/net[wide]/1" in (
        " ".join(out.split())
    )
