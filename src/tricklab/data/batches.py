"""Batches as index slices of tensors that already sit on the training device (no DataLoader).

Lightning accepts any iterable with ``__len__`` as a loader; this one costs one ``randperm`` per epoch
and one gather per batch, instead of a DataLoader's per-sample collation.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class IndexBatches:
    """Yields ``(x[idx], y[idx])`` for consecutive slices ``idx`` of a (shuffled) permutation.

    Under data parallelism each of ``world_size`` processes takes every ``world_size``-th sample of the
    same permutation (all ranks share ``seed``): disjoint parts of each epoch, equally many batches
    (the last ``n mod world_size`` samples of the permutation are left out).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(seed)

    def _indices(self) -> torch.Tensor:
        n = len(self.x)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        return order[: n - n % self.world_size][self.rank :: self.world_size].to(self.x.device)

    def __len__(self) -> int:
        return -(-(len(self.x) // self.world_size) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        indices = self._indices()
        for start in range(0, len(indices), self.batch_size):
            idx = indices[start : start + self.batch_size]
            yield self.x[idx], self.y[idx]
