"""Instructions: the work the toolkit's training adds to Lightning's floor, counted by valgrind.

``loop_overhead.py`` times the toolkit against Lightning's floor (a bare LightningModule on the
same batches); on a shared machine those wall-clock ratios move by several percent from one
run to the next. This script counts instead: valgrind's cachegrind counts every instruction a
process executes, and simulates its first-level data cache, whatever else the machine runs.

The digits MLP of ``loop_overhead.py`` (64-128-64-10, batch 64, fused Adam, a dev cost per
epoch) is fitted by the toolkit (with its guard, RNG state and gradient-norm callbacks) and by
the floor, each in its own process under cachegrind: one warm-up epoch, then a fit of 2 epochs
in one process and of 12 in another. The difference of the two counts is 10 epochs of training;
imports, start-up and each fit's setup cancel out. The first table gives, per epoch, the
instructions and first-level data-cache misses of each side and their ratio; the second splits
the toolkit's extra instructions by where they run (the Python interpreter, torch's operator
dispatch, the guard's check kernel, ...), from the per-function counts.

Counts repeat to about 0.5% (hash seeds and address-space layout are fixed; what is left is
timing-dependent work of Lightning and torch). Needs valgrind (``apt install valgrind``); the
four processes take about 12 minutes on 2 cores.

    python benchmarks/instructions.py
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import add_json_option, print_table, quiet, report

EPOCHS = (2, 12)
SIDES = ("toolkit", "floor")
_EVENTS = (
    ("Ir", "instructions"),
    ("I1mr", "first-level instruction-cache misses"),
    ("D1mr", "first-level data-cache read misses"),
    ("D1mw", "first-level data-cache write misses"),
)

# Where a function's instructions run, by its cachegrind file (fl=) and function (fn=) names;
# the first match wins.
_PLACES = (
    ("the guard's check kernel", re.compile(r"_amp_foreach_non_finite_check")),
    ("memory allocation (malloc, free)", re.compile(r"malloc|^_int_free|^free$|^cfree")),
    ("pybind11 (torch's Python bindings)", re.compile(r"pybind11")),
    (
        "torch's operator dispatch and kernels",
        re.compile(r"\b(at|c10|torch|caffe2)::|THP|PropertyGrad"),
    ),
    ("the Python interpreter", re.compile(r"Python-3\.|/Objects/|/Python/|^_?Py")),
)


def child(side: str, epochs: int) -> None:
    """One fit of ``side`` for ``epochs`` epochs after a one-epoch warm-up (run under valgrind)."""
    import torch
    from loop_overhead import _template, floor_fit, toolkit_fit

    quiet()
    from mlstrategy.data import ArrayDataModule, Digits
    from mlstrategy.models import DeepNet

    digits = ArrayDataModule(Digits(), dev_fraction=0.1, test_fraction=0.2, batch_size=64, seed=0)
    digits.prepare()

    def mlp():
        torch.manual_seed(0)
        return DeepNet((64,), 10, layer_dims=[128, 64], optimizer="adam", learning_rate=0.001)

    template = _template(mlp, digits)
    fit = toolkit_fit if side == "toolkit" else floor_fit
    fit(copy.deepcopy(template), digits, 1, True)
    fit(copy.deepcopy(template), digits, epochs, True)


def read_counts(path: Path) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """The totals (by event name: ``Ir``, ``D1mr``, ...) of a cachegrind output file, and the
    instructions (``Ir``) of each (file, function)."""
    events: list[str] = []
    totals: dict[str, int] = {}
    per_fn: dict[tuple[str, str], int] = defaultdict(int)
    fl = fn = ""
    for line in path.read_text().splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("fl="):
            fl = line[3:]
        elif line.startswith("fn="):
            fn = line[3:]
        elif line.startswith("summary:"):
            totals = dict(zip(events, map(int, line.split()[1:]), strict=False))
        elif line[:1].isdigit():
            counts = line.split()
            per_fn[(fl, fn)] += int(counts[1]) if len(counts) > 1 else 0
    if not totals:
        raise SystemExit(f"{path}: no summary line; is it a cachegrind output file?")
    return totals, dict(per_fn)


def place(fl: str, fn: str) -> str:
    """Where a function runs, from its file and function names (``other`` if none matches)."""
    for name, pattern in _PLACES:
        if pattern.search(fn) or pattern.search(fl):
            return name
    return "other (libc, libm, the loader, ...)"


def _valgrind(side: str, epochs: int, seed: int, out: Path) -> Path:
    """Run ``child(side, epochs)`` under cachegrind with Python's hash seed ``seed``; returns
    its output file."""
    path = out / f"{side}.{epochs}.{seed}.cachegrind"
    cmd = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=yes",
        f"--cachegrind-out-file={path}",
        sys.executable,
        __file__,
        "--child",
        side,
        str(epochs),
    ]
    if shutil.which("setarch"):  # the same address-space layout in every process
        cmd = ["setarch", platform.machine(), "-R", *cmd]
    env = {**os.environ, "PYTHONHASHSEED": str(seed), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"valgrind {side} {epochs} epochs failed:\n{done.stderr[-3000:]}")
    return path


def per_epoch(first: dict, last: dict) -> dict:
    """``(last - first) / epochs between them`` for each key of either."""
    span = EPOCHS[1] - EPOCHS[0]
    return {k: (last.get(k, 0) - first.get(k, 0)) / span for k in set(first) | set(last)}


def _mean(dicts: list[dict]) -> dict:
    """The mean of each key over ``dicts`` (0 where one lacks it)."""
    return {k: sum(d.get(k, 0) for d in dicts) / len(dicts) for k in set().union(*dicts)}


def measure(out: Path, seeds: list[int]) -> tuple[list[list[str]], list[list[str]]]:
    """The per-epoch table (the mean over hash seeds, and each seed's ratio) and the toolkit's
    extra instructions by where they run (the mean over seeds)."""
    jobs = [(side, e, seed) for seed in seeds for side in SIDES for e in EPOCHS]
    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        paths = dict(
            zip(jobs, pool.map(lambda j: _valgrind(j[0], j[1], j[2], out), jobs), strict=True)
        )
    totals: dict[str, list[dict]] = {side: [] for side in SIDES}
    fns: dict[str, list[dict]] = {side: [] for side in SIDES}
    for seed in seeds:
        for side in SIDES:
            (t0, f0), (t1, f1) = (read_counts(paths[(side, e, seed)]) for e in EPOCHS)
            totals[side].append(per_epoch(t0, t1))
            fns[side].append(per_epoch(f0, f1))
    rows = []
    for event, what in _EVENTS:
        tool, floor = (_mean(totals[side])[event] for side in SIDES)
        by_seed = ", ".join(
            f"{t[event] / f[event]:.3f}x"
            for t, f in zip(totals["toolkit"], totals["floor"], strict=True)
        )
        rows.append(
            [what, f"{tool / 1e6:.2f}M", f"{floor / 1e6:.2f}M", f"{tool / floor:.3f}x", by_seed]
        )
    tool_fns, floor_fns = _mean(fns["toolkit"]), _mean(fns["floor"])
    by_place: dict[str, float] = defaultdict(float)
    for key in set(tool_fns) | set(floor_fns):
        by_place[place(*key)] += tool_fns.get(key, 0) - floor_fns.get(key, 0)
    floor_ir = _mean(totals["floor"])["Ir"]
    extra = _mean(totals["toolkit"])["Ir"] - floor_ir
    parts = [
        [name, f"{n / 1e6:+.2f}M", f"{n / extra * 100:+.0f}%", f"{n / floor_ir * 100:+.2f}%"]
        for name, n in sorted(by_place.items(), key=lambda kv: -kv[1])
    ]
    parts.append(["all", f"{extra / 1e6:+.2f}M", "+100%", f"{extra / floor_ir * 100:+.2f}%"])
    return rows, parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_option(parser)
    parser.add_argument(
        "--seeds",
        default="0,1",
        help="Python hash seeds, comma-separated: each is a full measurement (default 0,1)",
    )
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "EPOCHS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, such as 0,1; got {args.seeds!r}")
    if shutil.which("valgrind") is None:
        raise SystemExit("instructions.py needs valgrind on the PATH: apt install valgrind")
    with tempfile.TemporaryDirectory() as scratch:
        rows, parts = measure(Path(scratch), seeds)
    header = [
        "per epoch (digits MLP, train + dev cost)",
        "toolkit",
        "floor",
        "toolkit / floor",
        f"by hash seed ({', '.join(map(str, seeds))})",
    ]
    parts_header = [
        "where the extra instructions run",
        "per epoch",
        "of the extra",
        "of the floor's",
    ]
    report(
        args.json,
        "instructions per epoch, counted by valgrind's cachegrind (the 12-epoch fit less the "
        "2-epoch fit, over 10)",
        header,
        rows,
    )
    print_table("the toolkit's extra instructions, by where they run", parts_header, parts)
    if args.json is not None:
        import json

        table = json.loads(args.json.read_text())
        table["parts"] = {"header": parts_header, "rows": parts}
        args.json.write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()
