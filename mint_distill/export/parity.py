"""How close an exported encoder is to the PyTorch model it came from.

Two checks: cosine similarity between the two models' embeddings of the same sample texts, and
(when a test collection is at hand) the NDCG@5 each reaches on it, scored by the evaluation
package exactly as the `evaluate` stage scores a dense ranker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from statistics import fmean
from typing import Any

import numpy as np

Encode = Callable[[list[str]], np.ndarray]

COSINE_GOAL_INT8 = 0.99
COSINE_GOAL_FLOAT = 0.9999  # merged weights and fp32 ONNX differ from the model by rounding alone
NDCG_GOAL_RELATIVE = 0.01


@dataclass(frozen=True)
class Parity:
    """Agreement of one exported variant with the reference embeddings."""

    variant: str
    texts: int
    min_cosine: float
    mean_cosine: float
    max_abs_difference: float

    @property
    def goal(self) -> float:
        """The least min cosine this variant should reach."""
        return COSINE_GOAL_INT8 if self.variant == "onnx-int8" else COSINE_GOAL_FLOAT

    @property
    def met(self) -> bool:
        return self.min_cosine >= self.goal  # False for NaN, a broken export

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cosine_parity(variant: str, reference: np.ndarray, candidate: np.ndarray) -> Parity:
    """Row-wise cosine similarity of two embedding matrices of the same texts."""
    if reference.shape != candidate.shape:
        raise ValueError(f"{variant}: embeddings of shape {candidate.shape}, expected {reference.shape}")
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    cosines = (reference * candidate).sum(axis=1) / np.maximum(norms, 1e-12)
    return Parity(
        variant=variant,
        texts=len(reference),
        min_cosine=float(cosines.min()),
        mean_cosine=float(cosines.mean()),
        max_abs_difference=float(np.abs(reference - candidate).max()),
    )


@dataclass(frozen=True)
class RankingParity:
    """Per-request NDCG@5 of each variant on the test collection: their means, the relative
    difference to the reference, and whether that difference is more than noise over these
    requests (paired randomization test)."""

    collection: str
    reference: str
    per_request: dict[str, dict[str, float]]

    @property
    def requests(self) -> int:
        return len(self.per_request[self.reference])

    @property
    def ndcg5(self) -> dict[str, float]:
        return {name: fmean(values.values()) if values else 0.0 for name, values in self.per_request.items()}

    def relative_difference(self, variant: str) -> float:
        base = self.ndcg5[self.reference]
        return (self.ndcg5[variant] - base) / base if base else 0.0

    def requests_changed(self, variant: str) -> int:
        """How many requests score a different NDCG@5 with `variant` than with the reference."""
        ours, theirs = self.per_request[variant], self.per_request[self.reference]
        return sum(abs(ours[qid] - theirs[qid]) > 1e-12 for qid in theirs)

    def p_value(self, variant: str) -> float:
        """Two-sided paired randomization test of the variant's per-request NDCG@5 against the reference's."""
        from ..evaluation.significance import randomization_test

        qids = sorted(self.per_request[self.reference])
        return randomization_test(
            np.array([self.per_request[variant][qid] for qid in qids]),
            np.array([self.per_request[self.reference][qid] for qid in qids]),
        )

    def variants(self) -> list[str]:
        return [name for name in self.per_request if name != self.reference]

    def as_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "requests": self.requests,
            "ndcg5": self.ndcg5,
            "reference": self.reference,
            "relative_difference": {name: self.relative_difference(name) for name in self.variants()},
            "requests_changed": {name: self.requests_changed(name) for name in self.variants()},
            "p_value": {name: self.p_value(name) for name in self.variants()},
        }


def ranking_parity(encoders: dict[str, Encode], recipe, reference: str) -> RankingParity | str:
    """NDCG@5 of each encoder on the recipe's test collection, or a message saying why it was skipped.

    Each encoder ranks every request's candidate pool by similarity (embeddings normalised, so
    cosine). Needs the data layer's `load_test_collection` and the evaluation package.
    """
    try:
        from ..data import load_test_collection
        from ..evaluation import evaluate_run, from_test_collection
    except ImportError as error:
        return f"NDCG parity skipped: the evaluation package is not available ({error})"
    from ..data.paths import data_dir
    from ..errors import MintError

    try:
        test = load_test_collection(recipe.data.test, data_dir(recipe.data.data_dir))
        collection = from_test_collection(test, recipe.data.test.pool)
    except MintError as error:
        return f"NDCG parity skipped: the test collection cannot be loaded ({error})"
    qids = collection.qids()
    item_ids = sorted({item for qid in qids for item in collection.pool_of(qid)})
    per_request: dict[str, dict[str, float]] = {}
    for name, encode in encoders.items():
        requests = _unit(encode([collection.requests[qid] for qid in qids]))
        items = dict(zip(item_ids, _unit(encode([collection.items[item] for item in item_ids])), strict=True))
        run = {
            qid: {item: float(requests[row] @ items[item]) for item in collection.pool_of(qid)}
            for row, qid in enumerate(qids)
        }
        per_request[name] = evaluate_run(run, collection.qrels, ["NDCG@5"], qids=qids)["NDCG@5"]
    return RankingParity(
        collection=f"{collection.name} ({collection.pool} pool)", reference=reference, per_request=per_request
    )


def _unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def ranking_goal_met(relative_difference: float) -> bool:
    """Whether an exported variant's NDCG@5 is within the goal of the model's (False for NaN)."""
    return abs(relative_difference) <= NDCG_GOAL_RELATIVE
