"""Scaling: epoch time and peak memory from 1k to 1M synthetic rows (64 features, 10 classes).

Each size runs in a fresh process so peak memory (max RSS) is that size's own. Epoch time
should grow linearly with rows; memory is the data (rows x 64 x 4 bytes, twice while the
split is made) plus a constant.

    python benchmarks/scaling.py           # 1k, 10k, 100k, 1M rows
    python benchmarks/scaling.py --quick   # 1k and 10k (CI)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import add_json_option, quiet, report, trainer


def one_size(rows: int) -> dict:
    quiet()
    import numpy as np

    from mlstrategy.data import ArrayDataModule, Arrays, ArraySource
    from mlstrategy.models import DeepNet

    class Synthetic(ArraySource):
        def load(self, seed: int) -> Arrays:
            rng = np.random.default_rng(seed)
            x = rng.standard_normal((rows, 64), dtype=np.float32)
            y = (x[:, :10].argmax(axis=1)).astype(np.int64)  # learnable: which of 10 is largest
            return Arrays(x, y)

    dm = ArrayDataModule(Synthetic(), dev_fraction=0.1, test_fraction=0.1, batch_size=256)
    dm.prepare()
    model = DeepNet(dm.input_shape, dm.num_classes, layer_dims=[128, 64])
    fit = trainer(2, validate=True)
    epoch_times: list[float] = []

    from lightning.pytorch.callbacks import Callback

    class Clock(Callback):
        def on_train_epoch_start(self, *_):
            self.start = time.perf_counter()

        def on_train_epoch_end(self, *_):
            epoch_times.append(time.perf_counter() - self.start)

    fit.callbacks.append(Clock())
    fit.fit(model, datamodule=dm)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": rows, "epoch_s": min(epoch_times), "peak_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_option(parser)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one)))
        return
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000, 1_000_000]
    results = []
    for rows in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(rows)],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = results[0]
    table = [
        [
            f"{r['rows']:,}",
            f"{r['epoch_s']:.3f}",
            f"{r['epoch_s'] / r['rows'] * 1e6:.2f}",
            f"{r['peak_mb']:.0f}",
            f"{(r['peak_mb'] - base['peak_mb']) * 2**20 / max(r['rows'] - base['rows'], 1):.0f}"
            if r is not base
            else "-",
        ]
        for r in results
    ]
    report(
        args.json,
        "scaling: DeepNet 64-128-64-10, batch 256, 80% of rows trained per epoch",
        ["rows", "epoch s", "us per row", "peak RSS MB", "extra bytes per row vs 1k"],
        table,
    )


if __name__ == "__main__":
    main()
