"""TensorBoard's HParams tab, read back through TensorBoard's own hparams backend: the columns
a run writes, the five TensorBoard ticks, and the values it shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlstrategy.reporting.hparams import HEADLINE, hparam_columns, score_columns


def _hparams_tab(logdir: Path) -> tuple[list[tuple[str, bool]], list[str], dict[str, dict]]:
    """What the HParams tab gets: ``[(column, differs)]`` in TensorBoard's order, the metric
    columns, and ``{run: {column or metric: value}}``."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
    from tensorboard.data.provider import RunTagFilter
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context, metadata

    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(logdir))
    tb = base_plugin.TBContext(logdir=str(logdir), data_provider=provider, multiplexer=mux)
    ctx, request = backend_context.Context(tb), context.RequestContext()
    content = ctx.hparams_metadata(request, "")
    experiment = ctx.experiment_from_metadata(
        request, "", True, content, ctx.hparams_from_data_provider(request, "", None)
    )
    columns = [(h.name, h.differs) for h in experiment.hparam_infos]
    metrics = [m.name.tag for m in experiment.metric_infos]
    rows: dict[str, dict] = {}
    for run, tags in content.items():
        if metadata.SESSION_START_INFO_TAG not in tags:
            continue
        start = metadata.parse_session_start_info_plugin_data(tags[metadata.SESSION_START_INFO_TAG])
        row = {k: getattr(v, str(v.WhichOneof("kind"))) for k, v in start.hparams.items()}
        last = ctx.read_last_scalars(request, "", RunTagFilter(runs=[run], tags=metrics))
        row |= {tag: datum.value for tag, datum in last.get(run, {}).items()}
        rows[run] = row
    return columns, metrics, rows


def test_columns_are_the_model_class_its_optimizer_and_what_the_recipe_changed():
    from mlstrategy.data import ArrayDataModule, BreastCancer
    from mlstrategy.models import DeepNet

    model = DeepNet(
        input_shape=(30,), num_classes=2, layer_dims=[8], keep_prob=0.8, learning_rate=0.5
    )
    data = ArrayDataModule(BreastCancer(), batch_size=32)
    columns = hparam_columns(model, data, seed=3, max_epochs=7)
    assert columns == {
        "model": "DeepNet",
        "optimizer": "adam",  # the default, shown anyway: a headline column
        "learning_rate": 0.5,
        "batch_size": 32,
        "seed": 3,
        "layer_dims": "[8]",
        "keep_prob": 0.8,
        "max_epochs": 7,
    }
    # Defaults given again (the same list spelled as a list) are not "set by the recipe".
    again = DeepNet(input_shape=(30,), num_classes=2, layer_dims=[64, 32])
    assert "layer_dims" not in hparam_columns(again)
    full_batch = ArrayDataModule(BreastCancer(), batch_size=None)
    assert hparam_columns(again, full_batch)["batch_size"] == "full"  # batch gradient descent


def test_scores_are_errors_then_f1_over_the_splits_in_order():
    scores = {
        "hparams/train_error": 0.1,
        "hparams/train_f1": 0.9,
        "hparams/dev_error": 0.2,
        "hparams/dev_f1": 0.8,
        "hparams/train_dev_error": 0.15,
        "hparams/test_error": 0.3,
        "dev/f1_weighted": 0.7,  # not a headline score
    }
    assert list(score_columns(scores)) == [
        "train/error",
        "dev/error",
        "train_dev/error",
        "test/error",
        "train/f1",
        "dev/f1",
    ]
    assert score_columns(scores)["train_dev/error"] == 0.15


@pytest.mark.slow  # one ~2 s run
def test_the_hparams_tab_ticks_model_optimizer_and_rate_and_shows_the_split_scores(tiny_recipe):
    import json

    from mlstrategy.runs.run import run_recipe

    overrides = ["--model.init_args.learning_rate=0.05", "--seed_everything=1"]
    result = run_recipe([tiny_recipe], overrides)
    columns, metrics, rows = _hparams_tab(Path("logs"))
    names = [name for name, _ in columns]
    # TensorBoard ticks the first five (sorted by `differs`, then by name): the headline.
    assert names[:5] == sorted(HEADLINE) and all(d for _, d in columns[:5])
    assert not any(n.startswith("_") or n in ("dev_fraction", "normalize", "seed_") for n in names)
    assert names[5:] == ["max_epochs"]  # the tiny recipe sets nothing else
    assert metrics == ["train/error", "dev/error", "test/error", "train/f1", "dev/f1", "test/f1"]
    (row,) = rows.values()
    assert row["model"] == "LogisticRegression" and row["optimizer"] == "gd"
    assert (row["learning_rate"], row["seed"], row["batch_size"]) == (0.05, 1, "full")
    assert row["max_epochs"] == 3
    splits = json.loads((result.run_dir / "metrics.json").read_text())["splits"]
    for metric in metrics:  # the table's cells are the run's scores
        split, score = metric.split("/")
        assert row[metric] == pytest.approx(splits[split][score], abs=1e-6)
