"""The teacher: an LLM, LoRA-tuned on hand-written seeds, that writes narrative requests.

histories   users.jsonl histories and seed pairs
prompts     Mint's few-shot prompt (shuffled examples, token budget, chat variant)
tuning      LoRA / QLoRA supervised tuning under Accelerate, resumable checkpoints
generation  base + adapter loading, batched sampling with stop strings
gates       quality gates for generated requests
synthesis   the resumable, shardable generation loop -> requests.jsonl
metrics     round-trip retrievability and diversity;  report: the teacher table
stage, cli  the `tune-teacher` and `generate` stages and commands;  bench: throughput
report_stage  the `teacher-report` stage: untuned vs tuned teacher on the same users
"""

from .gates import GateSettings, check_request
from .generation import RequestSampler, load_teacher
from .histories import History, Seed, ShownItem, load_seeds, load_users
from .prompts import Prompt, PromptBuilder, PromptTemplate, load_template
from .report import format_table, teacher_report
from .synthesis import merge_shards, synthesize, work_units
from .tuning import TunedTeacher, tune_teacher

__all__ = [
    "GateSettings",
    "History",
    "Prompt",
    "PromptBuilder",
    "PromptTemplate",
    "RequestSampler",
    "Seed",
    "ShownItem",
    "TunedTeacher",
    "check_request",
    "format_table",
    "load_seeds",
    "load_teacher",
    "load_template",
    "load_users",
    "merge_shards",
    "synthesize",
    "teacher_report",
    "tune_teacher",
    "work_units",
]
