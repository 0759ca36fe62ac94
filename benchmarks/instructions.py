"""Instructions: the work the toolkit's training adds to Lightning's floor, counted by valgrind.

``loop_overhead.py`` times the toolkit against Lightning's floor (a bare LightningModule on the
same batches); on a shared machine those wall-clock ratios move by several percent from one
run to the next. This script counts instead: valgrind's cachegrind counts every instruction a
process executes, and simulates its first-level instruction and data caches, whatever else the
machine runs.

The digits MLP of ``loop_overhead.py`` (64-128-64-10, batch 64, fused Adam, a dev cost per
epoch) is fitted by the toolkit (with its guard, RNG state and gradient-norm callbacks) and by
the floor, each in its own process under cachegrind: a one-epoch warm-up fit, then a fit of 2
epochs in one process and of 12 in another. The difference of the two counts is 10 epochs of
training; imports, start-up, the warm-up and each fit's setup cancel out. The first table gives,
per epoch, the instructions and first-level cache misses of each side and their ratio, for each
of Python's hash seeds and their mean; the second splits the toolkit's extra instructions by
where they run (the Python interpreter, torch's operator dispatch, the guard's check, ...), from
the per-function counts. That split reads function and file names, as a CPython built with
symbols gives them (a stripped one leaves its functions in "other").

With the address-space layout fixed (``setarch -R``, where the machine allows it) and one hash
seed, two runs of a process differed by 0.002% of its instructions; another seed moves the
ratio by about half a point, hence several seeds (``--seeds``). Needs valgrind
(``apt install valgrind``); the eight processes of two seeds take about 20 minutes on 2 cores.

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
from _common import add_json_option, add_tables, print_table, quiet, report

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
    ("the guard's check (its kernel and dispatch)", re.compile(r"_amp_foreach_non_finite_check")),
    ("pybind11 (torch's Python bindings)", re.compile(r"pybind11")),
    (
        "torch's other operators (dispatch and kernels)",
        re.compile(r"\b(at|c10|torch|caffe2)::|THP|PropertyGrad"),
    ),
    # Before malloc: CPython's own allocator (Objects/obmalloc.c) is the interpreter's.
    ("the Python interpreter", re.compile(r"Python-3\.|/Objects/|/Python/|^_?Py")),
    ("memory allocation (malloc, free)", re.compile(r"malloc|^_int_free|^free$|^cfree")),
)


def child(side: str, epochs: int) -> None:
    """One fit of ``side`` for ``epochs`` epochs after a one-epoch warm-up (run under valgrind)."""
    from loop_overhead import digits_data, floor_fit, mlp, model_template, toolkit_fit

    quiet()
    digits = digits_data()
    digits.prepare()
    template = model_template(mlp, digits)
    fit = toolkit_fit if side == "toolkit" else floor_fit
    fit(copy.deepcopy(template), digits, 1, True)
    fit(copy.deepcopy(template), digits, epochs, True)


def read_counts(path: Path) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """The totals (by event name: ``Ir``, ``D1mr``, ...) of a cachegrind output file, and the
    instructions (``Ir``) of each (file, function)."""
    events: list[str] = []
    ir = 1  # the Ir column of a count line (after the line number), set from "events:"
    totals: dict[str, int] = {}
    per_fn: dict[tuple[str, str], int] = defaultdict(int)
    fl = fn = ""
    for line in path.read_text().splitlines():
        if line.startswith("fl="):
            fl = line[3:]
        elif line.startswith("fn="):
            fn = line[3:]
        elif line.startswith("events:"):
            events = line.split()[1:]
            ir = events.index("Ir") + 1
        elif line.startswith("summary:"):
            totals = dict(zip(events, map(int, line.split()[1:]), strict=True))
        elif line[:1].isdigit():
            # "<line number> <count of each event>"; the format lets trailing zeros go unwritten.
            counts = line.split()
            per_fn[(fl, fn)] += int(counts[ir]) if len(counts) > ir else 0
    if not totals:
        raise SystemExit(
            f"{path}: no summary line; valgrind may have been stopped before it wrote one "
            "(run the script again), or the file is not cachegrind's"
        )
    return totals, dict(per_fn)


def place(fl: str, fn: str) -> str:
    """Where a function runs, from its file and function names (``other`` if none matches)."""
    for name, pattern in _PLACES:
        if pattern.search(fn) or pattern.search(fl):
            return name
    return "other (libc, libm, the loader, ...)"


def _valgrind(side: str, epochs: int, seed: int, out: Path, prefix: list[str]) -> Path:
    """Run ``child(side, epochs)`` under cachegrind with Python's hash seed ``seed``, after
    ``prefix`` (the fixed layout's ``setarch``, or nothing); returns its output file."""
    path = out / f"{side}.{epochs}.{seed}.cachegrind"
    cmd = [
        *prefix,
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
    env = {**os.environ, "PYTHONHASHSEED": str(seed), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"valgrind {side} {epochs} epochs failed:\n{done.stderr[-3000:]}")
    return path


def _fixed_layout() -> list[str]:
    """``setarch <machine> -R`` (the same address-space layout in every process) where this
    machine allows it; nothing otherwise (a container's seccomp profile may refuse it)."""
    setarch = ["setarch", platform.machine(), "-R"]
    if shutil.which("setarch") and subprocess.run([*setarch, "true"]).returncode == 0:
        return setarch
    return []


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
    prefix = _fixed_layout()
    if not prefix:
        print("setarch -R is refused here: the address-space layout varies between processes")
    pool = ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1)))
    futures = {job: pool.submit(_valgrind, *job, out, prefix) for job in jobs}
    try:
        paths = {job: future.result() for job, future in futures.items()}
    finally:  # a failed run cancels the queued ones instead of waiting for them
        pool.shutdown(cancel_futures=True)
    totals: dict[str, list[dict]] = {side: [] for side in SIDES}
    fns: dict[str, list[dict]] = {side: [] for side in SIDES}
    for seed in seeds:
        for side in SIDES:
            (t0, f0), (t1, f1) = (read_counts(paths[(side, e, seed)]) for e in EPOCHS)
            totals[side].append(per_epoch(t0, t1))
            fns[side].append(per_epoch(f0, f1))
    means = {side: _mean(totals[side]) for side in SIDES}
    rows = []
    for event, what in _EVENTS:
        tool, floor = means["toolkit"][event], means["floor"][event]
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
    floor_ir = means["floor"]["Ir"]
    extra = means["toolkit"]["Ir"] - floor_ir
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
        "instructions per epoch, counted by valgrind's cachegrind (the "
        f"{EPOCHS[1]}-epoch fit less the {EPOCHS[0]}-epoch fit, over {EPOCHS[1] - EPOCHS[0]})",
        header,
        rows,
    )
    print_table("the toolkit's extra instructions, by where they run", parts_header, parts)
    add_tables(args.json, parts=(parts_header, parts))


if __name__ == "__main__":
    main()
