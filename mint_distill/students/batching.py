"""The order examples are trained in: a pure function of the seed, so a resumed run replays it.

A global batch is what one forward pass sees across all processes; each process takes its
contiguous share. With `footprints`, no example of a batch brings what another must not meet
(for the bi-encoder: its request, its item or its hard negatives against the other's request and
every item shown for it), so in-batch negatives are never a positive of the request. With
`groups`, batches are topic-aware (TAS-B, Hofstätter et al. 2021): each group fills batches of
its own where it can, so in-batch negatives come from the same group (for the bi-encoder: the
same city, where a place in the request would otherwise tell most negatives apart).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

import torch

from ..errors import MintError


@dataclass(frozen=True)
class BatchFootprint:
    """What one example brings into a batch, and what it must not meet there: an example fits a
    batch when nothing it brings is avoided by the batch and nothing it avoids is brought."""

    brings: frozenset[Hashable]
    avoids: frozenset[Hashable]

    @classmethod
    def of(cls, brings: Iterable[Hashable], also_avoids: Iterable[Hashable] = ()) -> BatchFootprint:
        """An example that avoids whatever it brings itself, and `also_avoids` besides."""
        brought = frozenset(brings)
        return cls(brought, brought | frozenset(also_avoids))


Footprints = Callable[[int], BatchFootprint]
Groups = Callable[[int], Hashable | None]


def epoch_order(num_examples: int, seed: int, epoch: int, stream: int = 0) -> list[int]:
    """A permutation of range(num_examples) that depends only on (seed, epoch, stream)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch + stream * 7_919)
    return torch.randperm(num_examples, generator=generator).tolist()


def conflict_free_batches(
    order: list[int], batch_size: int, footprints: Footprints | None
) -> list[list[int]]:
    """Cut `order` into full batches whose examples' footprints do not clash; an example that
    clashes waits for a later batch, and what cannot fill a last batch is left out of this epoch."""
    if footprints is None:
        return [
            order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)
        ]
    remaining = list(order)
    batches: list[list[int]] = []
    while len(remaining) >= batch_size:
        batch: list[int] = []
        brought: set[Hashable] = set()
        avoided: set[Hashable] = set()
        deferred: list[int] = []
        for position, index in enumerate(remaining):
            footprint = footprints(index)
            if avoided.isdisjoint(footprint.brings) and brought.isdisjoint(footprint.avoids):
                batch.append(index)
                brought |= footprint.brings
                avoided |= footprint.avoids
                if len(batch) == batch_size:
                    deferred.extend(remaining[position + 1 :])
                    break
            else:
                deferred.append(index)
        if len(batch) < batch_size:
            break
        batches.append(batch)
        remaining = deferred
    return batches


def grouped_batches(
    order: list[int], batch_size: int, footprints: Footprints | None, group_of: Groups
) -> list[list[int]]:
    """Batches of one group each where the group can fill them (`conflict_free_batches` within it,
    in `order`); the examples no group batch took, and those whose group is None, are then
    batched together in `order`. Groups' batches come out together: shuffle them before use."""
    members: dict[Hashable, list[int]] = {}
    for index in order:
        group = group_of(index)
        if group is not None:
            members.setdefault(group, []).append(index)
    batches: list[list[int]] = []
    for group_members in members.values():
        batches.extend(conflict_free_batches(group_members, batch_size, footprints))
    taken = {index for batch in batches for index in batch}
    rest = [index for index in order if index not in taken]
    return batches + conflict_free_batches(rest, batch_size, footprints)


class BatchSchedule:
    """Global batches over several epochs, computed lazily epoch by epoch, indexable by position."""

    def __init__(
        self,
        num_examples: int,
        batch_size: int,
        seed: int,
        footprints: Footprints | None = None,
        groups: Groups | None = None,
        settings_key: str = "training",
    ):
        if num_examples < batch_size:
            raise MintError(
                f"{num_examples} training examples cannot fill one batch of {batch_size}; lower "
                f"{settings_key}.batch_size (or raise {settings_key}.max_train_pairs, if it is set)"
            )
        self.num_examples, self.batch_size, self.seed = num_examples, batch_size, seed
        self.footprints, self.groups = footprints, groups
        self._epochs: list[list[list[int]]] = []

    def epoch(self, epoch: int) -> list[list[int]]:
        while len(self._epochs) <= epoch:
            epoch_number = len(self._epochs)
            order = epoch_order(self.num_examples, self.seed, epoch_number)
            if self.groups is None:
                batches = conflict_free_batches(order, self.batch_size, self.footprints)
            else:
                batches = grouped_batches(order, self.batch_size, self.footprints, self.groups)
                shuffled = epoch_order(len(batches), self.seed, epoch_number, stream=1)
                batches = [batches[position] for position in shuffled]
            if not batches:
                raise MintError(
                    f"no batch of {self.batch_size} examples that are not each other's positives can be formed; "
                    "lower the student's training.batch_size"
                )
            self._epochs.append(batches)
        return self._epochs[epoch]

    def total_batches(self, epochs: float) -> int:
        """Batches in `epochs` passes (a fractional last pass takes that share of its batches)."""
        whole = int(epochs)
        total = sum(len(self.epoch(e)) for e in range(whole))
        if epochs > whole:
            total += max(1, int(len(self.epoch(whole)) * (epochs - whole)))
        return total

    def locate(self, position: int) -> tuple[int, list[int]]:
        """(epoch, global batch) at a position counted from the first batch of epoch 0."""
        epoch = 0
        while position >= len(self.epoch(epoch)):
            position -= len(self.epoch(epoch))
            epoch += 1
        return epoch, self.epoch(epoch)[position]


def process_share(batch: list[int], process_index: int, num_processes: int) -> list[int]:
    """This process's contiguous slice of a global batch (the batch size divides evenly)."""
    size = len(batch) // num_processes
    return batch[process_index * size : (process_index + 1) * size]
