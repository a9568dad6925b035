"""Rankers: first stages that score each request's pool, and rerankers of a first stage's top-k."""

from .base import PairScorer, Ranker, Reranker
from .bm25 import BM25Ranker
from .crossencoder import CrossEncoderScorer
from .dense import DenseRanker
from .upr import LikelihoodPairScorer

__all__ = ["BM25Ranker", "CrossEncoderScorer", "DenseRanker", "LikelihoodPairScorer", "PairScorer", "Ranker", "Reranker"]
