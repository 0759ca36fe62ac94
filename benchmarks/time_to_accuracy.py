"""Time to accuracy: the toolkit's fit time to reach scikit-learn's test accuracy, vs scikit-learn.

Same 80/20 stratified split (seed 0) for both. scikit-learn fits on its 80%; the toolkit
keeps a tenth of that 80% as its dev split (checkpointing needs one) and trains on the rest.
After every epoch the toolkit's test accuracy is checked (that evaluation is not timed) and
training stops once it reaches scikit-learn's.

    python benchmarks/time_to_accuracy.py           # full figures (median of 5)
    python benchmarks/time_to_accuracy.py --quick   # smoke test (CI)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import add_json_option, quiet, report, trainer


def split(x: np.ndarray, y: np.ndarray):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)


def sklearn_mlp(x_tr, x_te, y_tr, y_te):
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(128, 64), random_state=0)
    start = time.perf_counter()
    clf.fit(x_tr, y_tr)
    return time.perf_counter() - start, clf.score(x_te, y_te)


def sklearn_logistic(x_tr, x_te, y_tr, y_te):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression())
    start = time.perf_counter()
    clf.fit(x_tr, y_tr)
    return time.perf_counter() - start, clf.score(x_te, y_te)


def toolkit(make_model, x_tr, x_te, y_tr, y_te, target: float, max_epochs: int, batch_size):
    """Seconds of training until test accuracy >= target (evaluation time excluded), epochs."""
    from lightning.pytorch.callbacks import Callback

    from mlstrategy.data import ArrayDataModule, Arrays, ArraySource

    class Given(ArraySource):
        def load(self, seed: int) -> Arrays:
            return Arrays(
                x_tr.astype(np.float32),
                y_tr.astype(np.int64),
                x_test=x_te.astype(np.float32),
                y_test=y_te.astype(np.int64),
            )

    class StopAtTarget(Callback):
        def __init__(self) -> None:
            self.eval_seconds, self.reached_at, self.accuracy = 0.0, None, 0.0

        def on_train_epoch_end(self, trainer, module) -> None:
            start = time.perf_counter()
            module.eval()
            with torch.no_grad():
                pred = module.predict_labels(module(torch.from_numpy(x_te.astype(np.float32))))
            module.train()
            self.accuracy = (pred.numpy() == y_te).mean()
            if self.accuracy >= target - 1e-9 and self.reached_at is None:
                self.reached_at = trainer.current_epoch + 1
                trainer.should_stop = True
            self.eval_seconds += time.perf_counter() - start

    datamodule = ArrayDataModule(Given(), dev_fraction=0.1, batch_size=batch_size, seed=0)
    stop = StopAtTarget()
    fit = trainer(max_epochs, validate=True)
    fit.callbacks.append(stop)
    # Seeded like MLPClassifier(random_state=0): with a fresh random init per repeat the epochs
    # to the target ranged from 4 to 46, and the figure could not be reproduced.
    torch.manual_seed(0)
    model = make_model(datamodule)
    start = time.perf_counter()
    fit.fit(model, datamodule=datamodule)
    return time.perf_counter() - start - stop.eval_seconds, stop.reached_at, stop.accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_option(parser)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    quiet()
    from sklearn.datasets import load_breast_cancer, load_digits

    from mlstrategy.models import DeepNet, LogisticRegression

    repeats = 1 if args.quick else args.repeats
    rows = []
    digits = split(*load_digits(return_X_y=True))
    cancer_x, cancer_y = load_breast_cancer(return_X_y=True)
    cancer = split(cancer_x, 1 - cancer_y)
    cases = [
        (
            "MLP (128, 64) on digits",
            digits,
            sklearn_mlp,
            lambda dm: DeepNet(
                dm.input_shape, dm.num_classes, layer_dims=[128, 64], learning_rate=0.003
            ),
            64,
        ),
        (
            "logistic regression on breast cancer",
            cancer,
            sklearn_logistic,
            # l2_lambda=1 is scikit-learn's default C=1 in the course's notation (lambda = 1/C).
            lambda dm: LogisticRegression(
                dm.input_shape, optimizer="adam", learning_rate=0.05, l2_lambda=1.0
            ),
            None,
        ),
    ]
    for name, data, sk_fit, make_model, batch_size in cases:
        sk_runs = [sk_fit(*data) for _ in range(repeats)]
        sk_s, sk_acc = float(np.median([r[0] for r in sk_runs])), sk_runs[0][1]
        max_epochs = 3 if args.quick else 300
        runs = [toolkit(make_model, *data, sk_acc, max_epochs, batch_size) for _ in range(repeats)]
        tool_s = float(np.median([r[0] for r in runs]))
        reached = runs[-1][1]
        rows.append(
            [
                name,
                f"{sk_acc:.4f}",
                f"{sk_s:.3f}",
                f"{tool_s:.3f}" + ("" if reached else " (not reached)"),
                reached or f">{max_epochs}",
                f"{tool_s / sk_s:.2f}x",
            ]
        )
    report(
        args.json,
        f"time to scikit-learn's test accuracy (median of {repeats})",
        ["case", "target (sklearn test acc)", "sklearn fit s", "toolkit fit s", "epochs", "ratio"],
        rows,
    )


if __name__ == "__main__":
    main()
