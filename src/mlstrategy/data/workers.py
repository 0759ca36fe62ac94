"""How many DataLoader workers a data module starts: what it asks for, at most one per CPU."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def worker_count(asked: int, said: set[int]) -> int:
    """``asked`` workers, at most one per CPU this process may run on: a recipe written for a
    large GPU host (``num_workers: 8``) then does not oversubscribe a laptop, where torch warns
    beyond that count. Said once per value of ``asked`` kept in ``said``."""
    usable = usable_cpus()
    if asked <= usable:
        return asked
    if asked not in said:
        from lightning.pytorch.utilities import rank_zero_info

        rank_zero_info(
            f"num_workers={asked} is more than the {usable} CPUs this process may use: the "
            f"image loaders use {usable} workers (set data.init_args.num_workers to {usable} "
            "or fewer to match)."
        )
        said.add(asked)
    return usable
