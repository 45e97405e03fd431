"""Batches as index slices of tensors that already sit on the training device (no DataLoader).

Lightning accepts any iterable with ``__len__`` as a loader; this one costs one ``randperm`` per epoch
and one gather per batch, instead of a DataLoader's per-sample collation. For training it hands Lightning
runs of ``steps_per_call`` consecutive minibatches (``StepBatches``), one optimizer step each, so that
Lightning's per-batch bookkeeping is paid once per run rather than once per step (benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

Batch = tuple[torch.Tensor, torch.Tensor]


class StepBatches:
    """``len(slices)`` consecutive minibatches ``(x[idx], y[idx])``, gathered one at a time as they are iterated.

    Lightning moves batches to the device with their ``to`` method; this one has none, so it passes through
    untouched (its tensors are on the device already).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, slices: list[torch.Tensor]) -> None:
        self.x, self.y, self.slices = x, y, slices

    def __len__(self) -> int:
        return len(self.slices)

    def __iter__(self) -> Iterator[Batch]:
        for idx in self.slices:
            yield self.x[idx], self.y[idx]


def minibatches(batch: StepBatches | Batch) -> Iterable[Batch]:
    """The minibatches of a training batch: those of a ``StepBatches``, or the one ``(x, y)``."""
    return batch if isinstance(batch, StepBatches) else (batch,)


class IndexBatches:
    """Yields ``(x[idx], y[idx])`` for consecutive slices ``idx`` of a (shuffled) permutation, or, with
    ``steps_per_call`` set, ``StepBatches`` of up to that many such slices.

    Under data parallelism each of ``world_size`` processes takes every ``world_size``-th sample of the
    same permutation (all ranks share ``seed``): disjoint parts of each epoch, equally many batches
    (the last ``n mod world_size`` samples of the permutation are left out). ``max_steps`` keeps only the
    first that many minibatches of each epoch.
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
        steps_per_call: int | None = None,
        max_steps: int | None = None,
    ) -> None:
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.rank, self.world_size = rank, world_size
        self.steps_per_call, self.max_steps = steps_per_call, max_steps
        self.generator = torch.Generator().manual_seed(seed)

    def random_states(self) -> list[torch.Tensor]:
        """The state of the batch order's random stream (one; a pack's batches hold one per member)."""
        return [self.generator.get_state()]

    def set_random_states(self, states: list[torch.Tensor]) -> None:
        (state,) = states
        self.generator.set_state(state)

    @property
    def steps(self) -> int:
        """Minibatches per epoch (per process)."""
        steps = -(-(len(self.x) // self.world_size) // self.batch_size)
        return steps if self.max_steps is None else min(steps, self.max_steps)

    def __len__(self) -> int:
        return self.steps if self.steps_per_call is None else -(-self.steps // self.steps_per_call)

    def _slices(self) -> list[torch.Tensor]:
        n = len(self.x)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        indices = order[: n - n % self.world_size][self.rank :: self.world_size].to(self.x.device)
        return list(indices.split(self.batch_size))[: self.steps]

    def __iter__(self) -> Iterator[Batch | StepBatches]:
        slices = self._slices()
        if self.steps_per_call is None:
            for idx in slices:
                yield self.x[idx], self.y[idx]
        else:
            for start in range(0, len(slices), self.steps_per_call):
                yield StepBatches(self.x, self.y, slices[start : start + self.steps_per_call])
