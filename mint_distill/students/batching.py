"""The order examples are trained in: a pure function of the seed, so a resumed run replays it.

A global batch is what one forward pass sees across all processes; each process takes its
contiguous share. With `keys`, no two examples of a batch share a key (the same request or
the same item), so in-batch negatives are never another positive of the same request. With
`groups`, batches are topic-aware (TAS-B, Hofstätter et al. 2021): each group fills batches of
its own where it can, so in-batch negatives come from the same group (for the bi-encoder: the
same city, where a place in the request would otherwise tell most negatives apart).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

import torch

from ..errors import MintError

Keys = Callable[[int], Iterable[Hashable]]
Groups = Callable[[int], Hashable | None]


def epoch_order(num_examples: int, seed: int, epoch: int, stream: int = 0) -> list[int]:
    """A permutation of range(num_examples) that depends only on (seed, epoch, stream)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch + stream * 7_919)
    return torch.randperm(num_examples, generator=generator).tolist()


def distinct_key_batches(order: list[int], batch_size: int, keys: Keys | None) -> list[list[int]]:
    """Cut `order` into full batches whose examples share no key; examples that do wait for a
    later batch, and what cannot fill a last batch is left out of this epoch."""
    if keys is None:
        return [
            order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)
        ]
    remaining = list(order)
    batches: list[list[int]] = []
    while len(remaining) >= batch_size:
        batch: list[int] = []
        used: set[Hashable] = set()
        deferred: list[int] = []
        for position, index in enumerate(remaining):
            example_keys = set(keys(index))
            if used.isdisjoint(example_keys):
                batch.append(index)
                used |= example_keys
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
    order: list[int], batch_size: int, keys: Keys | None, group_of: Groups
) -> list[list[int]]:
    """Batches of one group each where the group can fill them (`distinct_key_batches` within it,
    in `order`); the examples no group batch took, and those whose group is None, are then
    batched together in `order`. Groups' batches come out together: shuffle them before use."""
    members: dict[Hashable, list[int]] = {}
    for index in order:
        group = group_of(index)
        if group is not None:
            members.setdefault(group, []).append(index)
    batches: list[list[int]] = []
    for group_members in members.values():
        batches.extend(distinct_key_batches(group_members, batch_size, keys))
    taken = {index for batch in batches for index in batch}
    rest = [index for index in order if index not in taken]
    return batches + distinct_key_batches(rest, batch_size, keys)


class BatchSchedule:
    """Global batches over several epochs, computed lazily epoch by epoch, indexable by position."""

    def __init__(
        self,
        num_examples: int,
        batch_size: int,
        seed: int,
        keys: Keys | None = None,
        groups: Groups | None = None,
    ):
        if num_examples < batch_size:
            raise MintError(
                f"{num_examples} training examples cannot fill one batch of {batch_size}; "
                "lower the student's training.batch_size"
            )
        self.num_examples, self.batch_size, self.seed = num_examples, batch_size, seed
        self.keys, self.groups = keys, groups
        self._epochs: list[list[list[int]]] = []

    def epoch(self, epoch: int) -> list[list[int]]:
        while len(self._epochs) <= epoch:
            epoch_number = len(self._epochs)
            order = epoch_order(self.num_examples, self.seed, epoch_number)
            if self.groups is None:
                batches = distinct_key_batches(order, self.batch_size, self.keys)
            else:
                batches = grouped_batches(order, self.batch_size, self.keys, self.groups)
                shuffled = epoch_order(len(batches), self.seed, epoch_number, stream=1)
                batches = [batches[position] for position in shuffled]
            if not batches:
                raise MintError(
                    f"no batch of {self.batch_size} examples with distinct requests and items can be formed; "
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
