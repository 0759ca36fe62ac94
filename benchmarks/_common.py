"""Shared helpers for the benchmark scripts: timing, tables, a quiet Lightning trainer."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch


def quiet() -> None:
    """Silence Lightning's banners and advice so the tables are readable."""
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    warnings.filterwarnings("ignore")
    for name in (
        "lightning.pytorch",
        "lightning.fabric",
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
    ):
        logging.getLogger(name).setLevel(logging.ERROR)


def machine() -> str:
    """One line naming the machine the figures come from."""
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, python {platform.python_version()}"
    )


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``fn()`` over ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def interleaved_times(
    runs: dict[str, Callable[[], Any]], repeats: int
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Wall times of each of ``runs``, called in turn for ``repeats`` rounds, the order
    rotating by one each round (A B C, B C A, C A B, ...), and each one's last result.

    On a shared machine the speed drifts over seconds; interleaving exposes every candidate
    to the same drift, so the ratio of two runs of one round (:func:`paired_ratio`) is far
    steadier than the ratio of two medians taken minutes apart. A run also depends on what
    ran just before it (the allocator's and caches' state): rotating the order gives every
    candidate each place in a round equally often (with ``repeats`` a multiple of their
    number), so that effect does not favour one of them.
    """
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, Any] = {}
    for i in range(repeats):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            fn = runs[name]
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    return times, results


def round_ratios(times: dict[str, list[float]], top: str, bottom: str) -> list[float]:
    """Each round's ``top`` time over its ``bottom`` time."""
    return [a / b for a, b in zip(times[top], times[bottom], strict=True)]


def median_ci(values: Sequence[float]) -> tuple[float, float] | None:
    """A 95% confidence interval for the median of ``values`` that assumes nothing about their
    distribution: the order statistics ``n/2 -+ 0.98 sqrt(n)`` (the binomial's normal
    approximation; each value is below the true median with probability 1/2). None for fewer
    than 6 values, too few for one.

    Example:
        >>> median_ci([1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9])
        (1.1, 1.8)
    """
    ordered = sorted(values)
    n = len(ordered)
    if n < 6:
        return None
    k = max(0, int(n / 2 - 0.98 * n**0.5))
    return ordered[k], ordered[n - 1 - k]


def paired_ratio(times: dict[str, list[float]], top: str, bottom: str) -> float:
    """The median over rounds of ``top``'s time over ``bottom``'s in the same round."""
    return statistics.median(round_ratios(times, top, bottom))


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain fixed-width table (readable in a terminal, a log and Markdown alike)."""
    cells = [[str(c) for c in header], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for i, row in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json PATH``: also write the table as JSON (``make figures`` reads it)."""
    parser.add_argument(
        "--json", type=Path, help="also write the table to this JSON file (make figures reads it)"
    )


def report(
    json_path: Path | None, title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Print the table, with the machine, and write it to ``json_path`` when one is given."""
    print(f"machine: {machine()}")
    print_table(title, header, rows)
    if json_path is not None:
        table = {
            "title": title,
            "header": list(header),
            "rows": [[str(c) for c in r] for r in rows],
        }
        json_path.write_text(json.dumps(table, indent=1) + "\n")


def add_tables(
    json_path: Path | None, **tables: tuple[Sequence[str], Sequence[Sequence[Any]]]
) -> None:
    """Add further ``name=(header, rows)`` tables to the JSON that :func:`report` wrote (none
    when no ``json_path`` was given)."""
    if json_path is None:
        return
    table = json.loads(json_path.read_text())
    for name, (header, rows) in tables.items():
        table[name] = {"header": list(header), "rows": [[str(c) for c in r] for r in rows]}
    json_path.write_text(json.dumps(table, indent=1) + "\n")


def trainer(
    max_epochs: int, validate: bool, callbacks: list[Any] | None = None, **kwargs: Any
) -> Any:
    """A Lightning Trainer as ``mlstrategy run`` builds it, minus disk output and the bar.

    The toolkit's always-on callbacks (non-finite guard, RNG state) stay in unless
    ``callbacks`` replaces them (``[]`` for Lightning's floor): they are part of what a user's
    training costs.
    """
    import lightning as L

    from mlstrategy.callbacks.guards import NonFiniteGuard, RNGState

    return L.Trainer(
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=None if validate else 0,
        deterministic=True,
        callbacks=[NonFiniteGuard(), RNGState()] if callbacks is None else callbacks,
        **kwargs,
    )
