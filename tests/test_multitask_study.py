"""`mlstrategy run` on multi-task recipes: per-task results in every output, clear errors for
bad recipes, and the study in recipes/multitask."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from sklearn.metrics import f1_score

from conftest import REPO
from mlstrategy.cli import main

STUDY = REPO / "recipes" / "multitask"
TASKS = ["pedestrian", "car", "stop_sign", "traffic_light"]


def _recipe(path: Path, heads: dict | None = None, **model_args) -> Path:
    recipe = {
        "model": {
            "class_path": "mlstrategy.models.MultiTaskNet",
            "init_args": {
                "heads": heads
                or {
                    "pedestrian": {"kind": "binary"},
                    "car": {"kind": "binary", "loss_weight": 2.0},
                    "signs": {"kind": "multilabel", "columns": ["stop_sign", "traffic_light"]},
                },
                "layer_dims": [8],
                "learning_rate": 0.01,
                **model_args,
            },
        },
        "data": {
            "class_path": "mlstrategy.data.MultiTaskDataModule",
            "init_args": {
                "source": {
                    "class_path": "mlstrategy.data.StreetScenes",
                    "init_args": {"n_samples": 80, "image_size": 16, "missing_fraction": 0.3},
                },
                "batch_size": None,
            },
        },
        "trainer": {"max_epochs": 2, "enable_progress_bar": False, "enable_model_summary": False},
    }
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def _run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in (root / "logs").rglob("metrics.json"))


@pytest.mark.slow
def test_run_writes_per_task_scores_diagnosis_report_and_tensorboard(in_tmp, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mlstrategy.data import MultiTaskDataModule, StreetScenes
    from mlstrategy.models import MultiTaskNet

    assert main(["run", str(_recipe(in_tmp / "mt.yaml"))]) == 0
    out = capsys.readouterr().out
    assert "per task (present labels only)" in out and "traffic_light" in out
    (run_dir,) = _run_dirs(in_tmp)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    splits = metrics["splits"]
    assert list(splits) == ["train", "dev", "test"]
    data = MultiTaskDataModule(StreetScenes(n_samples=80, image_size=16), seed=0).prepare()
    for split, (_, y) in data.items():
        tasks = splits[split]["tasks"]
        assert list(tasks) == TASKS
        for j, task in enumerate(TASKS):
            assert tasks[task]["n"] == int((y[:, j] >= 0).sum())  # present labels only
        scored = [t["f1"] for t in tasks.values() if not t.get("no_labels")]
        assert splits[split]["f1"] == pytest.approx(sum(scored) / len(scored))

    # The test F1 of each task is scikit-learn's on the present labels, for the best weights.
    ckpt = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")}
    model = MultiTaskNet(**hparams)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    x, y = data["test"]
    with torch.no_grad():
        out = model(x)
    preds = {"pedestrian": out["pedestrian"], "car": out["car"]}
    preds |= {"stop_sign": out["signs"][:, 0], "traffic_light": out["signs"][:, 1]}
    for j, task in enumerate(TASKS):
        keep = y[:, j] >= 0
        expected = f1_score(y[keep, j].long(), (preds[task][keep] > 0).long(), zero_division=0)
        assert splits["test"]["tasks"][task]["f1"] == pytest.approx(expected, abs=1e-6)

    diagnosis = json.loads((run_dir / "diagnosis.json").read_text())
    assert set(diagnosis["tasks"]) == set(TASKS)
    assert "largest" in diagnosis["tasks"]["car"]
    report = (run_dir / "report.md").read_text()
    assert (
        "## Per-task scores (present labels only)" in report and "## Per-task diagnosis" in report
    )
    events = EventAccumulator(str(run_dir)).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"test/car/f1", "dev/stop_sign/recall", "train/pedestrian/error"} <= tags
    assert "diagnosis/car/variance" in tags
    assert "report/tasks" in str(events.Tags()["tensors"])


@pytest.mark.parametrize(
    ("heads", "match"),
    [
        (
            {"car": {"kind": "detector"}},
            "kind=detector: expected one of binary, multilabel, multiclass, regression (in ",
        ),
        (
            {"bus": {"kind": "binary"}},
            "heads.bus.columns (default: its name): the data has no label column 'bus'; its "
            "label columns are ['pedestrian', 'car', 'stop_sign', 'traffic_light']",
        ),
        ({"car": {"loss_weight": -1}}, "heads.car.loss_weight=-1.0 must be a number >= 0"),
    ],
)
def test_bad_recipes_exit_2_with_a_clear_message(in_tmp, capsys, heads, match):
    assert main(["run", str(_recipe(in_tmp / "bad.yaml", heads=heads))]) == 2
    err = " ".join(capsys.readouterr().err.split())  # the message may wrap
    assert match in err
    assert not _run_dirs(in_tmp)


@pytest.mark.slow
def test_a_study_folder_ends_with_the_per_task_table(in_tmp, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # the table is wider than 80 columns
    study = in_tmp / "mtstudy"
    study.mkdir()
    _recipe(study / "_base.yaml")
    (study / "shared.yaml").write_text(yaml.safe_dump({"model": {"init_args": {}}}))
    separate = {"model": {"init_args": {"shared_trunk": False}}}
    (study / "separate.yaml").write_text(yaml.safe_dump(separate))
    assert main(["run", str(study), "--trainer.max_epochs=1"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("per-task test F1") :]
    assert "shared" in table and "separate" in table and "mean F1" in table
    params = {d.parent.name: json.loads((d / "metrics.json").read_text())["params"] for d in
              _run_dirs(in_tmp)}  # fmt: skip
    trunk = 3 * 16 * 16 * 8 + 8  # one hidden layer of 8 units on 3x16x16 inputs
    heads = 2 * (8 + 1) + (2 * 8 + 2)  # pedestrian, car, and signs (two units)
    assert params == {"shared": trunk + heads, "separate": 3 * trunk + heads}


@pytest.mark.slow
def test_the_study_recipes_compare_equal_trunks_and_a_wider_shared_one(in_tmp):
    from mlstrategy.runs.lightning_cli import MLStrategyCLI
    from mlstrategy.runs.recipes import recipe_configs

    runs = {configs[-1].stem: configs for configs in recipe_configs(STUDY)}
    assert set(runs) == {
        "small_multitask",
        "small_single_task",
        "large_multitask",
        "large_multitask_wide",
        "large_single_task",
    }
    shrink = ["--data.init_args.source.init_args.n_samples=60", "--data.init_args.train_size=20"]
    params, train_sizes = {}, {}
    for name, configs in runs.items():
        base = yaml.safe_load(configs[-1].read_text())
        train_sizes[name] = base["data"]["init_args"]["train_size"]
        cli = MLStrategyCLI(
            args=[*(f"--config={c}" for c in configs), *shrink, "--trainer.logger=false"],
            run=False,
        )
        params[name] = sum(p.numel() for p in cli.model.parameters())
        assert list(cli.model.heads) == TASKS
    assert train_sizes["small_multitask"] == train_sizes["small_single_task"] == 200
    assert train_sizes["large_multitask"] == train_sizes["large_single_task"] == 2000
    # The same trunk per single-task net as the shared one: 4 trunks against 1.
    heads = 4 * (16 + 1)
    assert params["small_single_task"] - heads == 4 * (params["small_multitask"] - heads)
    assert params["large_single_task"] == params["small_single_task"]
    # The wider shared trunk has about as many parameters as the four single-task nets.
    assert abs(params["large_multitask_wide"] / params["large_single_task"] - 1) < 0.1
