"""`teacher`: the LLM (LoRA-tuned) or template that writes narrative requests.

Defaults fit the embedded SmolLM2-135M on a 2-core CPU (tuning + generation for ~250 users in
about 15 minutes). Each few-shot example costs ~250 prompt tokens with that tokenizer, so the
512-token prompt budget keeps about one of the three examples; on a GPU set
`teacher.prompt.max_tokens: null` to show all of them, as the paper does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ...models.precision import MixedPrecision, Precision
from .base import LoraSpec, Section, Seed
from .data import check_template

# What a request prefix and a template pattern may name (each from the history's items).
REQUEST_FIELDS = frozenset({"main_category", "sub_categories", "city", "country"})


class PromptSpec(Section):
    num_examples: int = Field(
        3, ge=0, description="few-shot examples per prompt, shuffled per call"
    )
    max_tokens: int | None = Field(
        512,
        ge=16,
        description="prompt token budget: examples are dropped first, then the user's last items",
    )
    chat: bool = Field(False, description="wrap the prompt in the model's chat template")
    template: str | None = Field(
        None, description="YAML file with a custom prompt template (see teacher/prompts.py)"
    )
    seed: Seed = Field(0, description="seeds the choice and order of examples per user and attempt")


class TuningSpec(Section):
    enabled: bool = True
    seeds: str = "recipes/seeds/poi.jsonl"
    lora: LoraSpec = LoraSpec()
    qlora: bool = Field(False, description="load the base in 4-bit (bitsandbytes NF4), LoRA on top")
    epochs: float = Field(2.0, gt=0)
    learning_rate: float = Field(5e-4, gt=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    mixed_precision: MixedPrecision = Field(
        "auto",
        description="autocast precision; auto: bf16 where the device computes it natively (CPUs with "
        "AVX512-BF16 or AMX, Ampere+ GPUs; ~1.6x faster), else fp16 on GPUs and none on the CPU",
    )
    batch_size: int = Field(2, ge=1)
    gradient_accumulation: int = Field(2, ge=1)
    max_length: int = Field(
        768, ge=32, description="prompt + request tokens; the prompt is cut from the left"
    )
    checkpoint_every: int = Field(
        10, ge=1, description="optimizer steps between resumable checkpoints"
    )
    select_by: Literal["last", "dev_loss"] = Field(
        "last",
        description="the adapter kept: the last step's, or the one with the lowest dev loss among "
        "the epoch ends and the last step (needs dev seeds)",
    )
    seed: Seed = 0


class GenerationSpec(Section):
    max_new_tokens: int = Field(200, ge=1)
    do_sample: bool = True
    temperature: float = Field(0.8, gt=0)
    top_k: int = Field(50, ge=1, description="candidates a token is drawn from (before top_p)")
    top_p: float = Field(0.95, gt=0, le=1)
    repetition_penalty: float = Field(1.1, gt=0)
    stop: list[str] = Field(
        ["\n"], description="stop strings besides EOS (a request is one paragraph)"
    )
    batch_size: int = Field(16, ge=1)
    precision: Precision = Field(
        "float32",
        description="bfloat16: teacher weights in bfloat16, ~1.5x faster on CPUs with AVX512-BF16; "
        "auto: bfloat16 where the device computes it natively, else float32",
    )
    requests_per_user: int = Field(1, ge=1)
    min_words: int = Field(25, ge=0)
    max_words: int = Field(200, ge=1)
    max_repetition: float = Field(
        0.2, ge=0, le=1, description="largest share of repeated word trigrams"
    )
    copy_span: int = Field(
        8, ge=3, description="this many words copied from the prompt reject a request"
    )
    check_item_names: bool = Field(
        True, description="reject requests that name one of the user's items"
    )
    max_retries: int = Field(
        2, ge=0, description="new samples for a rejected request before giving up"
    )
    max_users: int | None = Field(None, ge=1)
    seed: Seed = 0

    @model_validator(mode="after")
    def _consistent(self) -> GenerationSpec:
        if self.max_words < self.min_words:
            # every request would be rejected, and the run would stop only at the students
            raise ValueError(f"max_words ({self.max_words}) is below min_words ({self.min_words})")
        return self


class ReportSpec(Section):
    """Round-trip retrievability and diversity of the teacher: the teacher-report stage, after generate."""

    enabled: bool = True
    encoder: str = Field(
        "embedded:all-minilm-l6-v2", description="zero-shot sentence-transformers encoder"
    )
    k: int = Field(10, ge=1, description="Recall@k cutoff")
    untuned: bool = Field(
        True, description="also sample the untuned teacher (same users) for a paired comparison"
    )
    untuned_examples: int | None = Field(
        None,
        ge=0,
        description="few-shot examples in the untuned teacher's prompts (an untuned model needs "
        "them even where the tuned one is prompted without); default teacher.prompt.num_examples",
    )
    users: int = Field(
        32,
        ge=0,
        description="besides the dev seeds, sample both teachers once on this many of the run's users",
    )


class TemplateTeacherSpec(Section):
    """`teacher.kind: template`: requests written by a pattern, no model (the baseline an LLM must beat)."""

    pattern: str = Field(
        "{prefix} {snippets}",
        description="fields: prefix, snippets, " + ", ".join(sorted(REQUEST_FIELDS)),
    )
    snippets: int = Field(
        2, ge=1, description="sentences of this many of the history's items (a seeded choice)"
    )

    @field_validator("pattern")
    @classmethod
    def _pattern_fields(cls, value: str) -> str:
        return check_template(value, REQUEST_FIELDS | {"prefix", "snippets"})


class TeacherSection(Section):
    kind: Literal["llm", "template"] = Field(
        "llm",
        description="llm: a (LoRA-tuned) language model; template: `teacher.template.pattern`",
    )
    catalog_kind: Literal["llm", "template"] | None = Field(
        None,
        description="teacher of the catalog pseudo-histories (data.catalog); null: kind. With kind llm "
        "and catalog_kind template, the LLM writes for users and the pattern for catalog groups",
    )
    request_prefix: str | None = Field(
        "Looking for {main_category}[, specifically {sub_categories}] in {city}, {country}.",
        description="put before every request, from the history's most common main category, "
        "3 most common sub-categories, city and country (the shape of data.test.query_template); "
        "left out for a history missing a field outside [..]; null: no prefix",
    )
    template: TemplateTeacherSpec = TemplateTeacherSpec()

    @field_validator("request_prefix")
    @classmethod
    def _prefix_fields(cls, value: str | None) -> str | None:
        return None if value is None else check_template(value, REQUEST_FIELDS)

    model: str = "embedded:smollm2-135m-instruct"
    trust_remote_code: bool = False
    prompt: PromptSpec = PromptSpec()
    tuning: TuningSpec = TuningSpec()
    generation: GenerationSpec = GenerationSpec()
    report: ReportSpec = ReportSpec()

    def kind_for(self, origin: str) -> str:
        """The teacher kind that writes the requests of histories of this origin."""
        return (self.catalog_kind or self.kind) if origin == "catalog" else self.kind

    def kinds(self, catalog_enabled: bool) -> set[str]:
        """The teacher kinds a run uses (catalog_kind only counts with catalog histories)."""
        return {self.kind, self.kind_for("catalog")} if catalog_enabled else {self.kind}
