"""`teacher`: the LLM (LoRA-tuned) or template that writes narrative requests."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import LoraSpec, Section


class PromptSpec(Section):
    num_examples: int = Field(3, ge=0, description="few-shot examples per prompt, shuffled per call")
    chat: bool = Field(False, description="wrap the prompt in the model's chat template")
    template: str | None = Field(None, description="file with a custom prompt template")


class TuningSpec(Section):
    enabled: bool = True
    seeds: str = "recipes/seeds/poi.jsonl"
    lora: LoraSpec = LoraSpec()
    qlora: bool = Field(False, description="load the base in 4-bit (bitsandbytes NF4), LoRA on top")
    epochs: float = 3.0
    learning_rate: float = 2e-4
    batch_size: int = 4
    gradient_accumulation: int = 1
    max_length: int = 768
    checkpoint_every: int = 20
    seed: int = 0


class GenerationSpec(Section):
    max_new_tokens: int = 200
    do_sample: bool = True
    temperature: float = 0.8
    top_p: float = 0.95
    repetition_penalty: float = 1.1
    batch_size: int = 16
    requests_per_user: int = 1
    min_words: int = 25
    max_words: int = 200
    max_retries: int = 2
    max_users: int | None = None
    seed: int = 0


class TeacherSection(Section):
    kind: Literal["llm", "template"] = "llm"
    model: str = "embedded:smollm2-135m-instruct"
    trust_remote_code: bool = False
    prompt: PromptSpec = PromptSpec()
    tuning: TuningSpec = TuningSpec()
    generation: GenerationSpec = GenerationSpec()
