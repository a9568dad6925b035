"""Keep rules: which of a request's items become positive training pairs."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ..recipe.sections.filtering import FilterSection

Method = Literal["likelihood", "encoder", "random", "none"]
SCORED_METHODS: frozenset[str] = frozenset({"likelihood", "encoder"})


@dataclass(frozen=True)
class Decision:
    """Where an item ranks among its request's items (1 = best) and whether it is kept."""

    rank: int
    kept: bool


@dataclass(frozen=True)
class KeepRule:
    """Per request, keep the top `keep_fraction` of the items shown to the teacher.

    - `likelihood`, `encoder`: rank by score, highest first; equal scores keep their shown order.
    - `random`: rank by a permutation seeded by (`seed`, request id): the paper's control,
      the same on every run and in every process.
    - `none`: keep every item, ranked in shown order.

    Of n items, `ceil(n * keep_fraction)` are kept, at least `min_keep` (or all n if fewer).
    `mint_compat` keeps `floor(n * keep_fraction) + 1` instead: the Mint authors' code computes
    `int(n * (1 - filter_frac))` and stops after writing one more than that.
    """

    method: Method = "likelihood"
    keep_fraction: float = 0.5
    min_keep: int = 1
    mint_compat: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.keep_fraction <= 1.0:
            raise ValueError(f"keep_fraction must be in (0, 1], got {self.keep_fraction}")
        if self.min_keep < 1:
            raise ValueError(f"min_keep must be at least 1, got {self.min_keep}")

    @property
    def scored(self) -> bool:
        """Whether this rule ranks items by a model's scores."""
        return self.method in SCORED_METHODS

    @classmethod
    def from_section(cls, section: FilterSection) -> KeepRule:
        return cls(section.method, section.keep_fraction, section.min_keep, section.mint_compat, section.seed)

    def keep_count(self, n: int) -> int:
        """How many of n items this rule keeps."""
        if self.method == "none":
            return n
        share = round(n * self.keep_fraction, 9)  # 10 * 0.3 is 3.0000000000000004 in binary floating point
        count = math.floor(share) + 1 if self.mint_compat else math.ceil(share)
        return min(n, max(count, self.min_keep))

    def decide(self, request_id: str, n_items: int, scores: Sequence[float] | None = None) -> list[Decision]:
        """One decision per item, in the order the items were shown (`scores` only for scored methods)."""
        if self.scored:
            if scores is None or len(scores) != n_items:
                raise ValueError(f"method `{self.method}` needs one score per item ({n_items})")
            order = sorted(range(n_items), key=lambda i: (-scores[i], i))
        else:
            order = list(range(n_items))
            if self.method == "random":
                random.Random(f"{self.seed}:{request_id}").shuffle(order)
        keep = self.keep_count(n_items)
        rank_of = {position: rank for rank, position in enumerate(order, start=1)}
        return [Decision(rank_of[i], rank_of[i] <= keep) for i in range(n_items)]
