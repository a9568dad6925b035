"""`evaluation`: rankers compared on the test collection, metrics and significance."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ...models.precision import Precision
from .base import ONE_WORD, Section

# Rankers the evaluate stage adds when the run folder holds trained students.
STUDENT_RANKERS = ("biencoder-mint", "crossencoder-mint")

_KIND_OPTIONS = {
    "bm25": {"k1", "b", "stemmer"},
    "upr": {"top_k", "model_type", "quantization", "score", "max_item_tokens", "trust_remote_code", "fusion_weight"},
    "crossencoder": {"top_k", "fusion_weight"},
}
_ALL_OPTIONS = set().union(*_KIND_OPTIONS.values())


class RankerSpec(Section):
    """One system of the comparison; its run is written to `runs/<name>.trec`.

    Kinds: `bm25`; `dense` (any sentence-transformers model, zero-shot); `biencoder` (a trained
    SentenceTransformer folder or PEFT adapter folder); `crossencoder` (a CrossEncoder folder)
    and `upr` (LM query likelihood, `mint_distill.scoring`) rerank the top `top_k` of `first_stage`.
    """

    name: str = Field(pattern=ONE_WORD, description="one word: the run name and file name")
    kind: Literal["bm25", "dense", "biencoder", "crossencoder", "upr"]
    model: str | None = Field(None, description="model reference or folder (all kinds but bm25)")
    first_stage: str | None = Field(None, description="an earlier ranker whose top_k this one reranks (crossencoder, upr)")
    top_k: int = Field(100, ge=1, description="how many first-stage items a reranker rescores")
    k1: float = Field(1.5, gt=0, description="bm25 term-frequency saturation")
    b: float = Field(0.75, ge=0, le=1, description="bm25 length normalisation")
    stemmer: str | None = Field("english", description="bm25 Snowball stemmer language (null: none)")
    model_type: Literal["auto", "causal", "seq2seq"] = "auto"
    quantization: Literal["none", "8bit", "4bit"] = "none"
    score: Literal["sum", "mean"] = Field("sum", description="upr: summed or per-token log-likelihood")
    max_item_tokens: int = Field(480, ge=1, description="upr: item text is cut after this many tokens")
    trust_remote_code: bool = False
    fusion_weight: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="crossencoder, upr: weight of the reranker's score against the first stage's, both "
        "z-normalised over the top_k (null: the reranker's scores alone)",
    )

    @model_validator(mode="after")
    def _fits_kind(self) -> RankerSpec:
        reranker = self.kind in ("crossencoder", "upr")
        if self.kind == "bm25" and self.model is not None:
            raise ValueError("a bm25 ranker takes no `model`")
        if self.kind != "bm25" and not self.model:
            raise ValueError(f"a {self.kind} ranker needs `model`")
        if reranker and not self.first_stage:
            raise ValueError(f"a {self.kind} ranker reranks another ranker's run: set `first_stage`")
        if not reranker and self.first_stage is not None:
            raise ValueError(f"a {self.kind} ranker ranks whole pools and takes no `first_stage`")
        # Only values that differ from the default count, so that a full dump validates again.
        changed = {key for key in _ALL_OPTIONS if getattr(self, key) != type(self).model_fields[key].default}
        foreign = sorted(changed - _KIND_OPTIONS.get(self.kind, set()))
        if foreign:
            raise ValueError(f"{', '.join(f'`{key}`' for key in foreign)} do(es) not apply to a {self.kind} ranker")
        return self


class EvaluationSection(Section):
    rankers: list[RankerSpec] = [
        RankerSpec(name="bm25", kind="bm25"),
        RankerSpec(name="zeroshot-minilm", kind="dense", model="embedded:all-minilm-l6-v2"),
        RankerSpec(name="zeroshot-mpnet", kind="dense", model="embedded:all-mpnet-base-v2"),
        # LM reranking costs ~1 s per (request, item) pair on 2 CPU cores: top 10, items cut at 256 tokens.
        RankerSpec(
            name="upr-smollm2", kind="upr", model="embedded:smollm2-135m-instruct", first_stage="bm25", top_k=10,
            max_item_tokens=256,
        ),
    ]
    students: bool = Field(
        True,
        description="also evaluate the trained students found in the run folder: biencoder-mint "
        "(average-biencoder/model) and crossencoder-mint (train-crossencoder/model, reranking "
        "biencoder-mint's top students.crossencoder.rerank_top_k)",
    )
    reference: str = Field("zeroshot-mpnet", description="the system every other is compared with")
    measures: list[str] = Field(
        ["NDCG@5", "NDCG@10", "MAP", "MRR", "P@5", "R@100"],
        description="NDCG@k (graded), MAP, MRR, P@k, R@k (binary at relevance_level)",
    )
    relevance_level: int = Field(3, ge=1, description="lowest grade counted relevant by binary measures (trec_eval -l)")
    depth: int = Field(200, ge=1, description="items per request in each run file")
    significance: Literal["randomization", "ttest"] = "randomization"
    resamples: int = Field(10_000, ge=100, description="sign patterns drawn by the randomization test")
    alpha: float = Field(0.05, gt=0, lt=1)
    batch_size: int = Field(32, ge=1)
    precision: Precision = Field(
        "float32",
        description="bfloat16: every neural ranker (encoders, cross-encoders, LM reranking) under bf16 autocast, "
        "~2x faster on CPUs with AVX512-BF16; auto: bfloat16 where the device computes it natively, else float32",
    )
    cache_dir: str | None = Field(
        None, description="encodings and pair scores reused across runs (default: $MINT_DISTILL_HOME/evaluation-cache)"
    )

    @field_validator("measures")
    @classmethod
    def _known_measures(cls, measures: list[str]) -> list[str]:
        from ...evaluation.metrics import check_measure

        if not measures:
            raise ValueError("list at least one measure")
        return [check_measure(name) for name in measures]

    @model_validator(mode="after")
    def _consistent_rankers(self) -> EvaluationSection:
        seen: list[str] = []
        for ranker in self.rankers:
            if ranker.name in seen:
                raise ValueError(f"two rankers are named `{ranker.name}`")
            if ranker.name in STUDENT_RANKERS:
                raise ValueError(f"`{ranker.name}` is reserved for the trained students of the run")
            if ranker.first_stage is not None and ranker.first_stage not in seen:
                raise ValueError(
                    f"ranker `{ranker.name}` reranks `{ranker.first_stage}`, which must be listed before it"
                )
            seen.append(ranker.name)
        allowed = seen + (list(STUDENT_RANKERS) if self.students else [])
        if self.reference not in allowed:
            raise ValueError(f"reference `{self.reference}` is not a ranker; choose one of: {', '.join(allowed)}")
        return self
