"""Search: random against a grid of the same budget, and trials per minute with 1 and 2 workers.

The course's claim: with a budget of n^2 trials over two hyperparameters, a grid tries only n
values of each, while random sampling tries n^2 values of each; when one parameter matters
much more than the other (the learning rate far more than Momentum's beta), random search finds
a better value of the one that matters. Both arms train `recipes/tune/digits_deep.yaml`
(learning rate on a log scale, beta1 as 1 - beta on a log scale, one hidden layer of 64
units) for the same epochs, over 5 seeds (the weights' seed, and the random arm's sampler
seed); the table gives the best dev error each reached.

The second table starts 1, then 2, `mlstrategy tune` processes together on one Optuna journal
file (the same two-parameter search, no pruning) and reports trials per minute over the whole
study, process start-up included; every trial must complete.

    python benchmarks/search.py            # 5 seeds, 9 trials an arm; 8 trials per worker test
    python benchmarks/search.py --quick    # 1 seed, 4 trials an arm, 1 epoch; 2 trials (CI)
    python benchmarks/search.py --json out.json   # also out.json and out_workers.json
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _common import add_json_option, quiet, report

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "tune" / "digits_deep.yaml"
SPACE = {
    "model.init_args.learning_rate": {"low": 1.0e-3, "high": 1.0, "log": True},
    "model.init_args.beta1": {"low": 0.9, "high": 0.999, "beta": True},
}
FIXED = [
    "--model.init_args.layer_dims=[64]",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--evaluation.latency_repeats=3",
]


def _grid(n: int) -> list[dict[str, float]]:
    """n x n points, evenly spaced on each range's own (log) scale."""

    def axis(low: float, high: float) -> list[float]:
        return [
            math.exp(math.log(low) + (math.log(high) - math.log(low)) * (i + 0.5) / n)
            for i in range(n)
        ]

    rates = axis(1e-3, 1.0)
    betas = [1 - x for x in axis(1 - 0.999, 1 - 0.9)]
    return [
        {"model.init_args.learning_rate": r, "model.init_args.beta1": b}
        for r, b in itertools.product(rates, betas)
    ]


def _random(n_trials: int, seed: int) -> list[dict[str, float]]:
    import optuna

    from mlstrategy.runs.search_space import SearchSpace
    from mlstrategy.runs.tune_setup import TrialSeededRandomSampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = SearchSpace(SPACE)
    study = optuna.create_study(sampler=TrialSeededRandomSampler(seed))
    points = []
    for _ in range(n_trials):
        trial = study.ask()
        points.append(space.values({n: r.suggest(trial, n) for n, r in space.params().items()}))
        study.tell(trial, 0.0)
    return points


def _best_dev_error(points: list[dict[str, float]], seed: int, epochs: int, logs: Path) -> float:
    """The lowest dev error over ``points``: each trained as `mlstrategy run` builds it and
    scored on dev with its best checkpoint, as a tune's trial is (without the run report,
    which costs more than the training here and changes no score)."""
    from mlstrategy.evaluation.scoring import evaluate_splits
    from mlstrategy.runs.lightning_cli import build_run

    errors = []
    for point in points:
        overrides = [*FIXED, f"--seed_everything={seed}", f"--trainer.max_epochs={epochs}"]
        overrides += [f"--{k}={v!r}" for k, v in point.items()]
        try:
            cli = build_run([RECIPE], overrides, logs)
            trainer, model, data = cli.trainer, cli.model, cli.datamodule
            trainer.fit(model, datamodule=data, weights_only=True)
            best = trainer.checkpoint_callback.best_model_path or None
            dev = evaluate_splits(trainer, model, data, ckpt_path=best, only=["dev"])["dev"]
            errors.append(dev["error"])
        except Exception:  # a diverging rate (the non-finite guard stops it): nothing found
            continue
    return min(errors) if errors else math.nan


def _two_parameter_recipe(root: Path) -> Path:
    """digits_deep.yaml with one hidden layer of 64 units and SPACE as its search section."""
    config = yaml.safe_load(RECIPE.read_text())
    config["model"]["init_args"]["layer_dims"] = [64]
    config["search"] = SPACE
    path = root / "digits_two_parameters.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _trials_per_minute(workers: int, trials: int, epochs: int, root: Path) -> float:
    import optuna

    from mlstrategy.runs.tune_storage import open_storage

    exe = Path(sys.executable).with_name("mlstrategy")
    journal = root / f"workers{workers}.journal"
    study = f"bench-{workers}"
    command = [
        str(exe),
        "tune",
        str(_two_parameter_recipe(root)),
        "--trials",
        str(trials),
        "--pruner",
        "none",
        "--storage",
        f"journal:{journal}",
        "--study",
        study,
        f"--trainer.max_epochs={epochs}",
        "--evaluation.latency_repeats=3",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(workers)
    ]
    codes = [p.wait() for p in procs]
    minutes = (time.perf_counter() - start) / 60
    ran = optuna.load_study(study_name=study, storage=open_storage(f"journal:{journal}")).trials
    done = [t for t in ran if t.state == optuna.trial.TrialState.COMPLETE]
    if any(codes) or len(done) != trials:
        raise SystemExit(f"{workers} worker(s): exit codes {codes}, {len(done)}/{trials} complete")
    return trials / minutes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 seed, 4 trials an arm (CI)")
    add_json_option(parser)
    args = parser.parse_args()
    quiet()
    seeds = [0] if args.quick else [0, 1, 2, 3, 4]
    side, epochs = (2, 1) if args.quick else (3, 10)
    begun = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for seed in seeds:
            grid = _best_dev_error(_grid(side), seed, epochs, root / "grid")
            rand = _best_dev_error(_random(side * side, seed), seed, epochs, root / "random")
            rows.append([seed, f"{100 * grid:.2f}%", f"{100 * rand:.2f}%"])
        grids = [float(r[1][:-1]) for r in rows]
        rands = [float(r[2][:-1]) for r in rows]
        rows.append(["mean", f"{statistics.mean(grids):.2f}%", f"{statistics.mean(rands):.2f}%"])
        report(
            args.json,
            f"best dev error, {side * side} trials an arm, {epochs} epochs a trial",
            ["seed", "grid", "random"],
            rows,
        )
        budget = 2 if args.quick else 8
        speed = [[w, budget, f"{_trials_per_minute(w, budget, epochs, root):.2f}"] for w in (1, 2)]
    workers_json = args.json.with_name(f"{args.json.stem}_workers.json") if args.json else None
    report(
        workers_json,
        f"trials per minute on one journal storage, {epochs} epochs a trial",
        ["workers", "trials", "trials/minute"],
        speed,
    )
    print(f"\nbenchmark wall time: {(time.perf_counter() - begun) / 60:.1f} min")


if __name__ == "__main__":
    main()
