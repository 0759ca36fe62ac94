"""The search: section: scales, integer and layer ranges, narrowing, and its bad inputs."""

from __future__ import annotations

import json
import math
import socket
from types import SimpleNamespace

import optuna
import pytest

from mlstrategy.runs.search_space import SearchSpace
from mlstrategy.runs.tune_pruning import DevCostPruning, register, unregister
from mlstrategy.runs.tune_setup import TrialSeededRandomSampler
from mlstrategy.runs.tune_storage import open_storage, storage_url

KEYS = [
    "model.init_args.learning_rate",
    "model.init_args.beta1",
    "data.init_args.batch_size",
    "model.init_args.layer_dims",
    "model.init_args.keep_prob",
]


def _sample(space: SearchSpace, n: int, seed: int = 0) -> list[dict]:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=TrialSeededRandomSampler(seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        sampled = {name: r.suggest(trial, name) for name, r in space.params().items()}
        out.append(space.values(sampled))
        study.tell(trial, 0.0)
    return out


def test_beta_scale_gives_each_decade_of_one_minus_beta_the_same_share_of_trials():
    space = SearchSpace({"model.init_args.beta1": {"low": 0.9, "high": 0.999, "beta": True}})
    betas = [v["model.init_args.beta1"] for v in _sample(space, 400)]
    assert all(0.9 <= b <= 0.999 for b in betas)
    # log10(1 - beta) is uniform on [-3, -1]: half the betas lie above 0.99. A linear scale
    # would put only (0.999 - 0.99) / 0.099 = 9% there.
    share = sum(b > 0.99 for b in betas) / len(betas)
    assert share == pytest.approx(0.5, abs=0.1)


def test_log_scale_spreads_the_learning_rate_evenly_over_decades():
    space = SearchSpace({"m.lr": {"low": 1e-4, "high": 1e-1, "log": True}})
    rates = [v["m.lr"] for v in _sample(space, 300)]
    below = sum(r < 1e-3 for r in rates) / len(rates)
    assert below == pytest.approx(1 / 3, abs=0.1)  # one decade of three


def test_whole_number_ranges_sample_integers_and_layers_build_a_list():
    space = SearchSpace(
        {
            "model.init_args.layer_dims": {
                "layers": {"low": 1, "high": 3},
                "units": {"low": 4, "high": 64, "log": True},
            },
            "trainer.max_epochs": {"low": 2, "high": 5},
        }
    )
    for values in _sample(space, 30):
        dims = values["model.init_args.layer_dims"]
        assert 1 <= len(dims) <= 3 and len(set(dims)) == 1 and 4 <= dims[0] <= 64
        assert isinstance(values["trainer.max_epochs"], int)
    overrides = space.overrides(
        {
            "model.init_args.layer_dims:layers": 2,
            "model.init_args.layer_dims:units": 16,
            "trainer.max_epochs": 3,
        }
    )
    assert overrides == ["--model.init_args.layer_dims=[16, 16]", "--trainer.max_epochs=3"]


def test_list_choices_go_through_optuna_and_come_back_as_lists():
    space = SearchSpace({"m.dims": {"choices": [[8], [16, 16]]}})
    assert {json.dumps(v["m.dims"]) for v in _sample(space, 20)} == {"[8]", "[16, 16]"}


def test_narrowing_keeps_log_scales_log_and_spans_the_best_trials_in_log_space():
    space = SearchSpace(
        {
            "m.lr": {"low": 1e-5, "high": 1.0, "log": True},
            "m.beta1": {"low": 0.9, "high": 0.999, "beta": True},
            "m.bs": {"choices": [16, 32, 64]},
        }
    )
    best = [
        {"m.lr": 1e-3, "m.beta1:1-beta": 0.01, "m.bs": 32},
        {"m.lr": 1e-2, "m.beta1:1-beta": 0.01, "m.bs": 64},
    ]
    narrowed = space.narrowed(best, margin=0.25).to_section()
    lr = narrowed["m.lr"]
    assert lr["log"] is True
    # log10 span 1 decade, a quarter of it on each side: 10^-3.25 .. 10^-1.75
    assert math.log10(lr["low"]) == pytest.approx(-3.25) and math.log10(lr["high"]) == (
        pytest.approx(-1.75)
    )
    assert narrowed["m.beta1"]["beta"] is True and 0.9 <= narrowed["m.beta1"]["low"] < 0.99
    assert narrowed["m.beta1"]["high"] > 0.99
    assert narrowed["m.bs"] == {"choices": [32, 64]}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"model.init_args.learnin_rate": {"low": 0.1, "high": 1}},
            "model.init_args.learning_rate",
        ),
        ({"model.learning_rate": {"low": 0.1, "high": 1}}, "model.init_args.learning_rate"),
        ({"model.init_args.learning_rate": {"low": 0.1, "high": 0.1}}, "low=0.1 is not below"),
        ({"model.init_args.learning_rate": {"low": 0.0, "high": 0.1, "log": True}}, "low > 0"),
        ({"data.init_args.batch_size": {"choices": []}}, "choices is empty"),
        ({"model.init_args.beta1": {"low": 0.9, "high": 1.5, "beta": True}}, "0 < low < high < 1"),
        ({"model.init_args.keep_prob": {"lo": 0.5, "high": 1.0}}, "not a range"),
        ({}, "no search: section"),
    ],
)
def test_bad_search_sections_are_refused_with_the_fix(section, message):
    with pytest.raises(ValueError, match="search") as err:
        SearchSpace(section, KEYS)
    assert message in str(err.value)


def test_unknown_storage_schemes_and_unreachable_databases_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown scheme 'redis'"):
        storage_url("redis://localhost", tmp_path)
    with pytest.raises(ValueError, match="unknown scheme"):
        storage_url("study.db", tmp_path)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ValueError, match="cannot reach the database") as err:
        open_storage(f"postgresql://me:secret@127.0.0.1:{port}/optuna")
    assert "secret" not in str(err.value)


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_pruning_reads_the_dev_cost_with_the_studys_sign_and_prunes_the_worse_trial(direction):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    study = optuna.create_study(direction=direction, pruner=pruner)
    sign = 1.0 if direction == "minimize" else -1.0
    first = study.ask()
    first.report(sign * 0.3, step=0)
    study.tell(first, sign * 0.3)

    def epoch(trial: optuna.Trial, cost: float) -> None:
        key = register(trial)
        trainer = SimpleNamespace(
            sanity_checking=False, current_epoch=0, callback_metrics={"cost/dev": cost}
        )
        try:
            DevCostPruning(key).on_validation_end(trainer, None)  # type: ignore[arg-type]
        finally:
            unregister(key)

    epoch(study.ask(), 0.2)  # lower dev cost than the first trial: kept in either direction
    with pytest.raises(optuna.TrialPruned, match=r"dev cost 0\.9"):
        epoch(study.ask(), 0.9)


def test_string_choices_reach_the_recipe_as_typed_for_str_and_literal_parameters(tmp_path):
    """A str-typed parameter (a data file's path) kept JSON's quotes: every trial of
    ``path: {choices: [b.csv]}`` looked for the file '"b.csv"'. A Literal (the activation)
    and a class path read the plain string too."""
    import yaml

    from mlstrategy.runs.lightning_cli import parse_recipe

    recipe = tmp_path / "r.yaml"
    source = {"class_path": "mlstrategy.data.ArrayFile", "init_args": {"path": "a.csv"}}
    recipe.write_text(
        yaml.safe_dump(
            {
                "model": {"class_path": "mlstrategy.models.DeepNet"},
                "data": {
                    "class_path": "mlstrategy.data.ArrayDataModule",
                    "init_args": {"source": source},
                },
            }
        )
    )
    space = SearchSpace(
        {
            "data.init_args.source.init_args.path": {"choices": ["data/b [v2].csv"]},
            "model.init_args.activation": {"choices": ["tanh"]},
            "data.init_args.source.class_path": {"choices": ["mlstrategy.data.ArrayFile"]},
        }
    )
    config = parse_recipe([recipe], space.overrides(space.example()))
    assert config["data"]["init_args"]["source"]["init_args"]["path"] == "data/b [v2].csv"
    assert config["data"]["init_args"]["source"]["class_path"] == "mlstrategy.data.ArrayFile"
    assert config["model"]["init_args"]["activation"] == "tanh"
