"""Batching: the toolkit's whole-tensor batches vs DataLoader(TensorDataset) with default collate.

Both iterate a shuffled epoch of the same tensors with the same batch size and touch every
batch; samples per second, median of repeats.

    python benchmarks/batching.py           # 100k x 64 rows, batch 64 and 512
    python benchmarks/batching.py --quick   # smoke test (CI)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).parent))
from _common import add_json_option, median_time, report

from mlstrategy.data import InMemoryBatches


def epoch(loader) -> int:
    seen = 0
    for xb, _ in loader:
        seen += len(xb)
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_option(parser)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows, repeats = (5_000, 1) if args.quick else (args.rows, args.repeats)
    x, y = torch.randn(rows, 64), torch.randint(0, 10, (rows,))
    table = []
    for batch_size in (64, 512):
        ours = InMemoryBatches(x, y, batch_size=batch_size, shuffle=True, seed=0)
        theirs = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)
        ours_s, n1 = median_time(lambda loader=ours: epoch(loader), repeats)
        theirs_s, n2 = median_time(lambda loader=theirs: epoch(loader), repeats)
        assert n1 == n2 == rows
        table.append(
            [
                batch_size,
                f"{rows / theirs_s:,.0f}",
                f"{rows / ours_s:,.0f}",
                f"{theirs_s / ours_s:.1f}x",
            ]
        )
    report(
        args.json,
        f"batching: one shuffled epoch of {rows:,} x 64 float32 rows (median of {repeats})",
        ["batch", "DataLoader(TensorDataset) samples/s", "InMemoryBatches samples/s", "speed-up"],
        table,
    )


if __name__ == "__main__":
    main()
