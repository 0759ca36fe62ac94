"""Mini-batches of in-memory tensors: one gather per batch, no per-sample collate."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch


class _EpochSampler:
    """Holds the epoch number; Lightning calls ``set_epoch`` on a loader's ``sampler``."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class InMemoryBatches:
    """Iterate ``(x, y)`` mini-batches by indexing whole tensors.

    A shuffled epoch draws one permutation (seeded by ``seed + epoch``, so an epoch's order
    does not depend on what ran before it) and takes each batch with a single ``x[idx]``
    gather; an unshuffled one takes contiguous slices (views, no copy). The tensors stay where
    they are, so data moved to the GPU once is never copied again.

    Under a distributed strategy each process takes every ``world_size``-th example of the
    permutation (training drops the remainder so every process runs the same number of steps).

    Args:
        x: Features, shape ``(m, ...)``.
        y: Labels, shape ``(m, ...)``.
        batch_size: Examples per batch; ``None`` means the whole set (batch gradient descent).
        shuffle: Draw a new order each epoch.
        seed: Seed of the permutation.
        rank: This process's rank among ``world_size``.
        world_size: Number of processes sharing the data.
        name: What the examples are, for error messages (``"the dev split"``).

    Raises:
        ValueError: under a distributed strategy, when there are fewer examples than
            processes: one process would have none, skip its loop, and leave the others
            waiting for it in the next reduction.

    Example:
        >>> batches = InMemoryBatches(torch.arange(5.0), torch.arange(5), batch_size=2)
        >>> [b[1].tolist() for b in batches]
        [[0, 1], [2, 3], [4]]
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int | None,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        name: str = "the data",
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}.")
        if world_size > 1 and len(x) < world_size:
            raise ValueError(
                f"{name[0].upper()}{name[1:]} has {len(x)} example(s), fewer than the "
                f"{world_size} processes sharing it: each process needs at least one (one "
                "without would skip its loop and leave the others waiting). Use fewer processes "
                "(--trainer.devices, --trainer.num_nodes) or a larger split."
            )
        self.x, self.y = x, y
        self.shuffle = shuffle
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        per_process = len(x) // world_size if shuffle else math.ceil((len(x) - rank) / world_size)
        self._per_process = per_process
        self.batch_size = per_process if batch_size is None else batch_size
        self.sampler = _EpochSampler()
        self.batch_sampler = None  # read by Lightning's loader checks; there is none
        self._served = 0  # batches yielded in the current epoch (for mid-epoch resume)
        self._resume: tuple[int, int] | None = None  # (epoch, batches to skip)

    def __len__(self) -> int:
        return math.ceil(self._per_process / max(self.batch_size, 1))

    def _indices(self) -> torch.Tensor | None:
        n = len(self.x)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.sampler.epoch)
            order = torch.randperm(n, generator=generator)
        elif self.world_size == 1:
            return None
        else:
            order = torch.arange(n)
        order = order[self.rank :: self.world_size][: self._per_process]
        return order.to(self.x.device)

    def state_dict(self) -> dict[str, int]:
        """Position in the data order: Lightning stores it in checkpoints taken mid-epoch."""
        return {"epoch": self.sampler.epoch, "served": self._served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume the saved epoch after the batches it had already served."""
        self._resume = (state["epoch"], state["served"])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        idx = self._indices()
        bs = self.batch_size
        skip = 0
        if self._resume is not None and self._resume[0] == self.sampler.epoch:
            skip = self._resume[1]
        self._resume = None
        self._served = skip
        for start in range(skip * bs, self._per_process, bs):
            self._served += 1
            if idx is None:
                yield self.x[start : start + bs], self.y[start : start + bs]
            else:
                batch = idx[start : start + bs]
                # index_select: the same gather as x[batch], at a third of the overhead.
                yield self.x.index_select(0, batch), self.y.index_select(0, batch)
