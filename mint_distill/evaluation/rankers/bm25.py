"""BM25 over the collection's item texts (bm25s), scoring each request's pool."""

from __future__ import annotations

import numpy as np

from ...bm25 import import_bm25s
from ..collection import EvalCollection
from ..trec import Run, ranked


class BM25Ranker:
    """BM25 (Lucene variant) with English stop words and Snowball stemming by default.

    Term statistics (IDF, average length) come from every item text in the collection, not from
    each pool, so one item scores the same for a request whichever pool it sits in.
    """

    def __init__(self, k1: float = 1.5, b: float = 0.75, stemmer: str | None = "english", stopwords: str | None = "en"):
        self.k1, self.b = k1, b
        self.stemmer, self.stopwords = stemmer, stopwords
        self.counters: dict[str, int] = {}

    def rank(self, collection: EvalCollection, depth: int) -> Run:
        bm25s = import_bm25s()

        stemmer = self._stemmer()
        item_ids = sorted(collection.items)
        corpus = bm25s.tokenize(
            [collection.items[item] for item in item_ids], stopwords=self.stopwords, stemmer=stemmer, show_progress=False
        )
        index = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        index.index(corpus, show_progress=False)
        row = {item: position for position, item in enumerate(item_ids)}
        qids = [qid for qid in collection.qids() if collection.pool_of(qid)]
        queries = bm25s.tokenize(
            [collection.requests[qid] for qid in qids],
            stopwords=self.stopwords, stemmer=stemmer, return_ids=False, show_progress=False,
        )
        run: Run = {}
        for qid, tokens in zip(qids, queries):
            known = [token for token in tokens if token in index.vocab_dict]
            scores = index.get_scores(known) if known else np.zeros(len(item_ids), dtype=np.float32)
            pool = collection.pool_of(qid)
            run[qid] = dict(ranked({item: float(scores[row[item]]) for item in pool}, depth))
        self.counters = {"items_indexed": len(item_ids), "requests": len(qids)}
        return run

    def _stemmer(self):
        if self.stemmer is None:
            return None
        import Stemmer

        return Stemmer.Stemmer(self.stemmer)
