"""The training batches of a pack: every member's own batch order, gathered as one (K, B, ...) batch a step."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from tricklab.data.batches import IndexBatches, StepBatches
from tricklab.data.datamodule import TensorDataModule


class MemberBatches:
    """The minibatches of K ``IndexBatches`` (one per member seed) side by side: step i of the pack takes the i-th
    minibatch of every member, as index rows (K, B) into the one set of tensors (x[idx] is then (K, B, ...))."""

    def __init__(self, members: list[IndexBatches]) -> None:
        self.members = members

    def random_states(self) -> list[torch.Tensor]:
        return [state for batches in self.members for state in batches.random_states()]

    def set_random_states(self, states: list[torch.Tensor]) -> None:
        for batches, state in zip(self.members, states, strict=True):
            batches.set_random_states([state])

    @property
    def steps(self) -> int:
        return self.members[0].steps

    def __len__(self) -> int:
        return len(self.members[0])

    def __iter__(self) -> Iterator[StepBatches]:
        for runs in zip(*self.members, strict=True):
            slices = [torch.stack(idx) for idx in zip(*(run.slices for run in runs), strict=True)]
            yield StepBatches(runs[0].x, runs[0].y, slices)


class PackDataModule(TensorDataModule):
    """A ``TensorDataModule`` whose training batches come in the batch orders of the pack's seeds (each member's
    order is the one its job would shuffle alone); validation and test batches are shared."""

    def __init__(self, *args, seeds: list[int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seeds = seeds

    def fresh_train_batches(self) -> MemberBatches:
        return MemberBatches([self.train_batches(seed) for seed in self.seeds])
