"""Loop overhead: the toolkit's training vs a hand-written PyTorch loop doing the same work.

Same network object (copied), same initial weights, same data order (the toolkit's epoch-seeded
permutation), same optimizer; the training costs after one epoch must agree. Cases: the course's
64-128-64-10 MLP on digits (batch 64, Adam, 20 epochs) and a 1-D CNN on MNIST-1D.

Lightning's floor: a bare LightningModule (the same net and input normalization, cross-entropy,
Adam; a dev cost per epoch when validating, nothing logged) on the same batches, in the same
Trainer settings without the toolkit's callbacks. The last two columns are its time and the
toolkit's ratio to it. The full run also prints where the toolkit's extra time goes: the time
with each of its parts switched off (JSON key ``breakdown``).

    python benchmarks/loop_overhead.py            # full figures (5 repeats, median)
    python benchmarks/loop_overhead.py --quick    # smoke test (CI): 2 epochs, 1 repeat
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _common import add_json_option, median_time, print_table, quiet, report, trainer


def hand_loop(model, x, y, x_dev, y_dev, epochs: int, batch_size: int, seed: int, validate: bool):
    """The loop a user would write: shuffle, forward, cost, backward, step; dev cost per epoch."""
    net, norm = model.net, model.input_norm
    optimizer = torch.optim.Adam(net.parameters(), lr=model.hparams.learning_rate)
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


def toolkit_fit(model, datamodule, epochs: int, validate: bool, callbacks=None):
    trainer(epochs, validate, callbacks).fit(model, datamodule=datamodule)
    return model.cost_curve[-1]["cost/train"], model.cost_curve[-1].get("cost/dev")


def floor_fit(model, datamodule, epochs: int, validate: bool):
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
            return torch.optim.Adam(self.net.parameters(), lr=model.hparams.learning_rate)

    trainer(epochs, validate, callbacks=[]).fit(Bare(), datamodule=datamodule)


def _bare_training_step(model) -> None:
    """The toolkit's training step without its bookkeeping: the batch's cost, nothing kept."""

    def training_step(batch, batch_idx):
        x, y = batch
        return model.cost(model(x), y)

    model.training_step = training_step


def breakdown(name, make_model, datamodule, epochs, repeats):
    """The toolkit's time (train + dev cost per epoch) with each of its parts switched off."""
    from mlstrategy.callbacks.guards import NonFiniteGuard, RNGState

    template = make_model()
    template.input_norm.load_state_dict(datamodule.input_normalizer().state_dict())

    def timed(callbacks=None, patch=None):
        def run():
            model = copy.deepcopy(template)
            if patch is not None:
                patch(model)
            return toolkit_fit(model, datamodule, epochs, True, callbacks)

        run()  # warm-up
        return median_time(run, repeats)[0]

    full = timed()
    parts = {
        "non-finite guard": timed(callbacks=[RNGState()]),
        "RNG-state callback": timed(callbacks=[NonFiniteGuard()]),
        # Each step's cost kept (a list append of the detached tensor; no device op), read
        # once per epoch: switched off, the step is the cost alone.
        "per-step cost bookkeeping": timed(patch=_bare_training_step),
        # Inactive without a logger (as here): what is left is Lightning calling its hooks.
        "grad-norm callback": timed(patch=lambda m: setattr(m, "configure_callbacks", list)),
        "floor (all off, bare module)": median_time(
            lambda: floor_fit(copy.deepcopy(template), datamodule, epochs, True), repeats
        )[0],
    }
    return [
        [name, part, f"{seconds:.3f}", f"{full:.3f}", f"{(full - seconds) / full * 100:+.1f}%"]
        for part, seconds in parts.items()
    ]


def case(name, make_model, datamodule, epochs, repeats, validate):
    splits = datamodule.prepare()
    (x, y), (x_dev, y_dev) = splits["train"], splits["dev"]
    template = make_model()
    template.input_norm.load_state_dict(datamodule.input_normalizer().state_dict())

    def run_toolkit_for(n_epochs: int):
        return toolkit_fit(copy.deepcopy(template), datamodule, n_epochs, validate)

    def run_hand_for(n_epochs: int):
        model = copy.deepcopy(template)
        return hand_loop(
            model, x, y, x_dev, y_dev, n_epochs, datamodule.batch_size, datamodule.seed, validate
        )

    def run_toolkit():
        return run_toolkit_for(epochs)

    def run_hand():
        return run_hand_for(epochs)

    def run_floor():
        return floor_fit(copy.deepcopy(template), datamodule, epochs, validate)

    # Same work: after one epoch both sides' costs agree to float rounding (checked here, which
    # also warms both up). Over 20 epochs, last-bit differences between the two (Lightning's
    # step, the toolkit's weighted cost accumulation) grow chaotically in the CNN, so its final
    # costs differ in the third digit; both are printed.
    hand_1, tool_1 = run_hand_for(1)[0], run_toolkit_for(1)[0]
    if abs(hand_1 - tool_1) > 1e-5 * max(1.0, abs(hand_1)):
        raise SystemExit(f"{name}: final costs differ after one epoch: hand {hand_1} vs {tool_1}")
    hand_s, hand_cost = median_time(run_hand, repeats)
    tool_s, tool_cost = median_time(run_toolkit, repeats)
    run_floor()  # warm-up
    floor_s, _ = median_time(run_floor, repeats)
    what = "train + dev cost/epoch" if validate else "train only"
    return [
        name,
        what,
        f"{hand_s:.3f}",
        f"{tool_s:.3f}",
        f"{tool_s / hand_s:.2f}x",
        f"{hand_cost[0]:.5f} / {tool_cost[0]:.5f}",
        f"{floor_s:.3f}",
        f"{tool_s / floor_s:.2f}x",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_option(parser)
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 epochs, 1 repeat")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    quiet()
    from mlstrategy.data import MNIST1D, ArrayDataModule, Digits
    from mlstrategy.models import ConvNet, DeepNet

    epochs, repeats = (2, 1) if args.quick else (20, args.repeats)
    digits = ArrayDataModule(Digits(), dev_fraction=0.1, test_fraction=0.2, batch_size=64, seed=0)
    mnist1d = ArrayDataModule(
        MNIST1D(num_samples=1000 if args.quick else 5000, as_sequence=True),
        dev_fraction=0.1,
        batch_size=64,
    )

    def mlp():
        torch.manual_seed(0)
        return DeepNet((64,), 10, layer_dims=[128, 64], optimizer="adam", learning_rate=0.001)

    def cnn():
        torch.manual_seed(0)
        return ConvNet((1, 40), 10, channels=[32, 64], optimizer="adam", learning_rate=0.003)

    rows = []
    for validate in (False, True):
        rows.append(case("MLP 64-128-64-10, digits", mlp, digits, epochs, repeats, validate))
        rows.append(case("CNN 1-D, MNIST-1D", cnn, mnist1d, epochs, repeats, validate))
    report(
        args.json,
        f"loop overhead ({epochs} epochs, batch 64, Adam; median of {repeats})",
        [
            "case",
            "work",
            "hand loop s",
            "toolkit s",
            "ratio",
            "final train cost (hand / toolkit)",
            "Lightning floor s",
            "toolkit / floor",
        ],
        rows,
    )
    if args.quick:
        return
    parts = [
        *breakdown("MLP 64-128-64-10, digits", mlp, digits, epochs, repeats),
        *breakdown("CNN 1-D, MNIST-1D", cnn, mnist1d, epochs, repeats),
    ]
    header = ["case", "switched off", "toolkit without it s", "toolkit s", "share of toolkit"]
    print_table("where the toolkit's time goes (train + dev cost/epoch)", header, parts)
    if args.json is not None:
        table = json.loads(args.json.read_text())
        table["breakdown"] = {"header": header, "rows": parts}
        args.json.write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()
