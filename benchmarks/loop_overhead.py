"""Loop overhead: the toolkit's training vs a hand-written PyTorch loop doing the same work.

Same network object (copied), same initial weights, same data order (the toolkit's epoch-seeded
permutation), same optimizer (the toolkit's: fused Adam on the CPU); the training costs after
one epoch must agree. Cases: the course's 64-128-64-10 MLP on digits (batch 64, Adam, 20
epochs) and a 1-D CNN on MNIST-1D.

Lightning's floor: a bare LightningModule (the same net and input normalization, cross-entropy,
the same Adam; a dev cost per epoch when validating, nothing logged) on the same batches, in
the same Trainer settings without the toolkit's callbacks. The last three columns are its
time, the toolkit's ratio to it and a 95% confidence interval for that ratio (of the median
of the rounds' ratios, from their order statistics: no assumption on the noise). The full run
also prints where the toolkit's time goes: the time with each of its parts switched off (JSON key
``breakdown``), and with torch's own Adam class (its default per-tensor step, and its
CUDA-graph capture check each step) instead of the toolkit's fused one.

Every candidate runs once per round, in turn (the order rotating each round), for ``--repeats``
rounds; a time is the median over rounds and a ratio the median of each round's ratio, so the
machine's drift over seconds (two timings of one configuration minutes apart can differ by 20%
on a shared 2-core machine) hits both sides of a ratio alike.

    python benchmarks/loop_overhead.py            # full figures (12 rounds, 36 for the MLP)
    python benchmarks/loop_overhead.py --quick    # smoke test (CI): 2 epochs, 1 round
"""

from __future__ import annotations

import argparse
import copy
import re
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _common import (
    add_json_option,
    add_tables,
    interleaved_times,
    median_ci,
    paired_ratio,
    print_table,
    quiet,
    report,
    round_ratios,
    trainer,
)


def hand_loop(model, x, y, x_dev, y_dev, epochs: int, batch_size: int, seed: int, validate: bool):
    """The loop a user would write: shuffle, forward, cost, backward, step; dev cost per epoch."""
    net, norm = model.net, model.input_norm
    optimizer = same_optimizer(model, net.parameters())
    n = len(x)
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
        total = torch.zeros(())
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            loss = F.cross_entropy(net(norm(x[idx])), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        epoch_cost = (total / n).item()
        if validate:
            net.eval()
            with torch.no_grad():
                dev_cost = F.cross_entropy(net(norm(x_dev)), y_dev).item()
    return epoch_cost, dev_cost if validate else None


def same_optimizer(model, params):
    """The optimizer the toolkit builds for ``model`` (fused Adam on the CPU), on ``params``."""
    from mlstrategy.models.optim import build_optimizer

    hp = model.hparams
    return build_optimizer(hp.optimizer, params, hp.learning_rate, hp.beta1, hp.beta2, hp.epsilon)


def toolkit_fit(model, datamodule, epochs: int, validate: bool, callbacks=None, **kwargs):
    trainer(epochs, validate, callbacks, **kwargs).fit(model, datamodule=datamodule)
    return model.cost_curve[-1]["cost/train"], model.cost_curve[-1].get("cost/dev")


def floor_fit(model, datamodule, epochs: int, validate: bool, **kwargs):
    """Lightning's floor: a bare LightningModule doing the same work, nothing more."""
    import lightning as L

    class Bare(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net, self.norm = model.net, model.input_norm

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.net(self.norm(x)), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.net(self.norm(x)), y)

        def configure_optimizers(self):
            return same_optimizer(model, self.net.parameters())

    trainer(epochs, validate, callbacks=[], **kwargs).fit(Bare(), datamodule=datamodule)


def digits_data():
    """The MLP case's data: scikit-learn's digits, 10% dev and 20% test, batch 64."""
    from mlstrategy.data import ArrayDataModule, Digits

    return ArrayDataModule(Digits(), dev_fraction=0.1, test_fraction=0.2, batch_size=64, seed=0)


def mlp():
    """The course's 64-128-64-10 MLP with Adam, from seed 0."""
    from mlstrategy.models import DeepNet

    torch.manual_seed(0)
    return DeepNet((64,), 10, layer_dims=[128, 64], optimizer="adam", learning_rate=0.001)


def model_template(make_model, datamodule):
    """A fresh model with the data's train-split input statistics: every candidate of a case
    trains a deep copy of it (same weights, same normalization)."""
    template = make_model()
    template.input_norm.load_state_dict(datamodule.input_normalizer().state_dict())
    return template


def _bare_training_step(model) -> None:
    """The toolkit's training step without its bookkeeping: the batch's cost, nothing kept."""

    def training_step(batch, batch_idx):
        x, y = batch
        return model.cost(model(x), y)

    model.training_step = training_step


def _torch_default_adam(model) -> None:
    """The toolkit's model with ``torch.optim.Adam(params, lr)`` (torch's per-tensor step)
    instead of its fused Adam."""

    def configure_optimizers():
        return torch.optim.Adam(model.parameters(), lr=model.hparams.learning_rate)

    model.configure_optimizers = configure_optimizers


def _lightning_hook_costs(model) -> None:
    """The toolkit's model paying Lightning's per-hook costs as a bare module does: its empty
    per-step hooks dispatched, and ``_current_fx_name`` set through nn.Module's __setattr__."""
    import lightning as L

    from mlstrategy.models.base import _EMPTY_BATCH_HOOKS

    for hook in _EMPTY_BATCH_HOOKS:
        model.__dict__.pop(hook, None)
    slow = {"__setattr__": L.LightningModule.__setattr__}
    model.__class__ = type(type(model).__name__, (type(model),), slow)


def breakdown(name, make_model, datamodule, epochs, repeats):
    """The toolkit's time (train + dev cost per epoch) with each of its parts switched off,
    all variants interleaved round by round."""
    from mlstrategy.callbacks.guards import NonFiniteGuard, RNGState

    template = model_template(make_model, datamodule)

    def variant(callbacks=None, patch=None):
        def run():
            model = copy.deepcopy(template)
            if patch is not None:
                patch(model)
            return toolkit_fit(model, datamodule, epochs, True, callbacks)

        return run

    parts = {
        "non-finite guard": variant(callbacks=[RNGState()]),
        "RNG-state callback": variant(callbacks=[NonFiniteGuard()]),
        # Each step's cost kept (a list append of the detached tensor; no device op), read
        # once per epoch: switched off, the step is the cost alone.
        "per-step cost bookkeeping": variant(patch=_bare_training_step),
        # Inactive without a logger (as here): what is left is Lightning calling its hooks.
        "grad-norm callback": variant(patch=lambda m: setattr(m, "configure_callbacks", list)),
        # Not overhead but cuts: what the module's shortcuts around Lightning's hooks save.
        "the module's hook shortcuts (fx name set plainly, empty step hooks skipped)": variant(
            patch=_lightning_hook_costs
        ),
        # Not overhead but a choice: torch's default Adam instead of the fused kernel.
        "torch's own Adam (per-tensor; its per-step capture check)": variant(
            patch=_torch_default_adam
        ),
        "floor (all off, bare module)": lambda: floor_fit(
            copy.deepcopy(template), datamodule, epochs, True
        ),
    }
    runs = {"toolkit": variant(), **parts}
    for run in runs.values():
        run()  # warm-up
    # A multiple of the number of variants, so each takes every place in a round as often.
    times, _ = interleaved_times(runs, len(runs) * max(1, round(repeats / len(runs))))
    full = statistics.median(times["toolkit"])
    return [
        [
            name,
            part,
            f"{statistics.median(times[part]):.3f}",
            f"{full:.3f}",
            f"{(1 - 1 / paired_ratio(times, 'toolkit', part)) * 100:+.1f}%",
        ]
        for part in parts
    ]


# The parts of a fit, by the names Lightning's SimpleProfiler gives its actions ("module." is
# the LightningModule, whatever its class); a part's time is the sum of its actions'.
_PARTS = {
    "non-finite guard (callback)": ("[Callback]NonFiniteGuard.",),
    "RNG-state callback": ("[Callback]RNGState.",),
    "grad-norm callback": ("[Callback]GradientNorms.",),
    "training step (forward, cost, kept cost)": ("[Strategy]SingleDeviceStrategy.training_step",),
    "dev cost (validation steps)": ("[Strategy]SingleDeviceStrategy.validation_step",),
    "epoch ends (the costs read, the cost curve)": (
        "module.on_train_epoch_start",
        "module.on_train_epoch_end",
        "module.on_validation_epoch_end",
    ),
    "setup (callbacks, input statistics, optimizer)": (
        "module.configure_callbacks",
        "module.configure_model",
        "module.configure_optimizers",
        "module.setup",
        "module.on_fit_start",
        "module.on_train_start",
    ),
}


def _part_times(profiler) -> dict[str, float]:
    """Seconds per part of one profiled fit."""
    totals = dict.fromkeys(_PARTS, 0.0)
    for action, durations in profiler.recorded_durations.items():
        action = re.sub(r"^\[LightningModule\]\w+\.", "module.", action)
        for part, prefixes in _PARTS.items():
            if action.startswith(prefixes):
                totals[part] += sum(durations)
    return totals


def hook_times(name, make_model, datamodule, epochs, fits):
    """Time inside each part of the toolkit's fit and of the floor's, from Lightning's
    SimpleProfiler: the fastest of ``fits`` fits for each part (the part's own cost, as near
    as this machine gives it: a slower fit is one the machine slowed), toolkit and floor fits
    alternating. A part the floor does not have reads 0 there."""
    import tempfile

    from lightning.pytorch.profilers import SimpleProfiler

    template = model_template(make_model, datamodule)
    runs = {"toolkit": toolkit_fit, "floor": floor_fit}
    parts: dict[str, list[dict[str, float]]] = {kind: [] for kind in runs}
    whole: dict[str, list[float]] = {kind: [] for kind in runs}
    with tempfile.TemporaryDirectory() as scratch:
        for i in range(fits + 1):  # the first of each is a warm-up
            for kind, fit in runs.items():
                profiler = SimpleProfiler(dirpath=scratch, filename=kind)
                start = time.perf_counter()
                fit(copy.deepcopy(template), datamodule, epochs, True, profiler=profiler)
                if i:
                    whole[kind].append(time.perf_counter() - start)
                    parts[kind].append(_part_times(profiler))
    fastest = {kind: {p: min(f[p] for f in parts[kind]) for p in _PARTS} for kind in runs}
    floor_fit_s = min(whole["floor"])
    rows = []
    for part in _PARTS:
        tool_ms, floor_ms = fastest["toolkit"][part] * 1e3, fastest["floor"][part] * 1e3
        if tool_ms < 0.05 and floor_ms < 0.05:
            continue
        extra = tool_ms - floor_ms
        share = f"{extra / 1e3 / floor_fit_s * 100:+.1f}%"
        rows.append([name, part, f"{tool_ms:.1f}", f"{floor_ms:.1f}", f"{extra:+.1f}", share])
    tool_s = min(whole["toolkit"])
    extra = (tool_s - floor_fit_s) * 1e3
    share = f"{(tool_s / floor_fit_s - 1) * 100:+.1f}%"
    total = [f"{tool_s * 1e3:.0f}", f"{floor_fit_s * 1e3:.0f}", f"{extra:+.0f}", share]
    rows.append([name, f"whole fit (fastest of {fits})", *total])
    return rows


def case(name, make_model, datamodule, epochs, repeats, validate):
    splits = datamodule.prepare()
    (x, y), (x_dev, y_dev) = splits["train"], splits["dev"]
    template = model_template(make_model, datamodule)

    def run_toolkit_for(n_epochs: int):
        return toolkit_fit(copy.deepcopy(template), datamodule, n_epochs, validate)

    def run_hand_for(n_epochs: int):
        model = copy.deepcopy(template)
        return hand_loop(
            model, x, y, x_dev, y_dev, n_epochs, datamodule.batch_size, datamodule.seed, validate
        )

    def run_floor():
        return floor_fit(copy.deepcopy(template), datamodule, epochs, validate)

    # Same work: after one epoch both sides' costs agree to float rounding (checked here, which
    # also warms both up). Over 20 epochs, last-bit differences between the two (Lightning's
    # step, the toolkit's weighted cost accumulation) grow chaotically in the CNN, so its final
    # costs differ in the third digit; both are printed.
    hand_1, tool_1 = run_hand_for(1)[0], run_toolkit_for(1)[0]
    if abs(hand_1 - tool_1) > 1e-5 * max(1.0, abs(hand_1)):
        raise SystemExit(f"{name}: final costs differ after one epoch: hand {hand_1} vs {tool_1}")
    run_floor()  # warm-up
    runs = {
        "hand": lambda: run_hand_for(epochs),
        "toolkit": lambda: run_toolkit_for(epochs),
        "floor": run_floor,
    }
    times, results = interleaved_times(runs, repeats)
    hand_s, tool_s, floor_s = (statistics.median(times[k]) for k in runs)
    hand_cost, tool_cost = results["hand"], results["toolkit"]
    what = "train + dev cost/epoch" if validate else "train only"
    return [
        name,
        what,
        f"{hand_s:.3f}",
        f"{tool_s:.3f}",
        f"{paired_ratio(times, 'toolkit', 'hand'):.2f}x",
        f"{hand_cost[0]:.5f} / {tool_cost[0]:.5f}",
        f"{floor_s:.3f}",
        f"{paired_ratio(times, 'toolkit', 'floor'):.2f}x",
        _ratio_ci(times, "toolkit", "floor"),
    ]


def _ratio_ci(times, top: str, bottom: str) -> str:
    """The 95% confidence interval of the median of the rounds' ``top / bottom`` ratios."""
    interval = median_ci(round_ratios(times, top, bottom))
    return "-" if interval is None else f"{interval[0]:.2f}-{interval[1]:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_option(parser)
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 epochs, 1 repeat")
    parser.add_argument("--repeats", type=int, default=12)
    args = parser.parse_args()
    quiet()
    from mlstrategy.data import MNIST1D, ArrayDataModule
    from mlstrategy.models import ConvNet

    epochs, repeats = (2, 1) if args.quick else (20, args.repeats)
    digits = digits_data()
    mnist1d = ArrayDataModule(
        MNIST1D(num_samples=1000 if args.quick else 5000, as_sequence=True),
        dev_fraction=0.1,
        batch_size=64,
    )

    def cnn():
        torch.manual_seed(0)
        return ConvNet((1, 40), 10, channels=[32, 64], optimizer="adam", learning_rate=0.003)

    # The MLP's fits take about a second, the CNN's ten. A round's toolkit / floor ratio varies
    # by about 10% on a shared 2-core machine, and the MLP's overhead is the one near the 5%
    # target: it gets 6x the rounds (a 95% interval about 2.5x narrower than the CNN's).
    mlp_rounds = 6 * repeats if not args.quick else repeats
    rows = []
    for validate in (False, True):
        rows.append(case("MLP 64-128-64-10, digits", mlp, digits, epochs, mlp_rounds, validate))
        rows.append(case("CNN 1-D, MNIST-1D", cnn, mnist1d, epochs, repeats, validate))
    report(
        args.json,
        f"loop overhead ({epochs} epochs, batch 64, fused Adam; {mlp_rounds} interleaved rounds "
        f"for the MLP, {repeats} for the CNN: median times, ratios the median of each round's "
        "ratio)",
        [
            "case",
            "work",
            "hand loop s",
            "toolkit s",
            "ratio",
            "final train cost (hand / toolkit)",
            "Lightning floor s",
            "toolkit / floor",
            "95% CI",
        ],
        rows,
    )
    if args.quick:
        return
    parts = [
        *breakdown("MLP 64-128-64-10, digits", mlp, digits, epochs, mlp_rounds),
        # Its fits take ten times the MLP's: half the rounds, to keep the run near 25 minutes.
        *breakdown("CNN 1-D, MNIST-1D", cnn, mnist1d, epochs, max(1, repeats // 2)),
    ]
    header = ["case", "switched off", "toolkit without it s", "toolkit s", "share of toolkit"]
    print_table("where the toolkit's time goes (train + dev cost/epoch)", header, parts)
    hooks = [
        *hook_times("MLP 64-128-64-10, digits", mlp, digits, epochs, repeats),
        *hook_times("CNN 1-D, MNIST-1D", cnn, mnist1d, epochs, max(2, repeats // 2)),
    ]
    hooks_header = ["case", "part", "toolkit ms", "floor ms", "extra ms", "of the floor's fit"]
    print_table(
        "time inside each part of a fit (train + dev cost/epoch; Lightning's SimpleProfiler, "
        "fastest fit of each part)",
        hooks_header,
        hooks,
    )
    add_tables(args.json, breakdown=(header, parts), parts=(hooks_header, hooks))


if __name__ == "__main__":
    main()
