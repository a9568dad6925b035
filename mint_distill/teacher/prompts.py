"""Mint's few-shot prompt: k example blocks, shuffled on every call, then the user's own block.

Each block reads (the default template, as in the Mint paper)::

    A user likes these recommendations: Neptune Oyster in Boston, Flour Bakery in Boston
    The user wrote these reviews:
    - The lobster roll is worth the wait.
    - Best sticky buns in town.
    In response to the request on Reddit: <request>

The user's block stops after "Reddit:"; the model writes the rest. The same builder makes the
tuning pairs (prompt + target request) and the generation prompts, so both see one format.
A template file (YAML, keys of `PromptTemplate`) replaces the wording; `chat=True` wraps the
prompt in the tokenizer's chat template for instruct models.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from ..errors import RecipeError
from .histories import History, Seed, ShownItem


@dataclass(frozen=True)
class PromptTemplate:
    """The wording of one block. `block` must end with `{request}`."""

    block: str = (
        "A user likes these recommendations: {items}\n"
        "The user wrote these reviews:\n{reviews}\n"
        "In response to the request on Reddit: {request}"
    )
    item: str = "{name} in {city}"
    item_without_city: str = "{name}"
    item_separator: str = ", "
    review: str = "- {sentence}"
    review_separator: str = "\n"
    example_separator: str = "\n\n"
    instruction: str = ""

    def __post_init__(self) -> None:
        for name, allowed in PLACEHOLDERS.items():
            used = _placeholders(name, getattr(self, name))
            unknown = sorted(used - allowed)
            if unknown:
                raise RecipeError(
                    f"prompt template: `{name}` uses {', '.join(f'{{{u}}}' for u in unknown)}; it may use "
                    f"{', '.join(f'{{{a}}}' for a in sorted(allowed))} (write {{{{ and }}}} for literal braces)"
                )
        for placeholder in ("{items}", "{reviews}"):
            if placeholder not in self.block:
                raise RecipeError(f"prompt template: `block` must contain {placeholder}")
        if not self.block.rstrip().endswith("{request}"):
            raise RecipeError(
                "prompt template: `block` must end with {request} (the model writes from there)"
            )

    def render(self, items: Sequence[ShownItem], request: str = "") -> str:
        """One block; without a request it ends where the model starts writing: before {request},
        less the spaces there (tokenizers join a leading space to the request's first word)."""
        names = self.item_separator.join(
            self.item.format(name=i.label, city=i.city)
            if i.city
            else self.item_without_city.format(name=i.label)
            for i in items
        )
        reviews = self.review_separator.join(self.review.format(sentence=i.sentence) for i in items)
        if request:
            return self.block.format(items=names, reviews=reviews, request=request)
        before_request = self.block[: self.block.rindex("{request}")]
        return before_request.format(items=names, reviews=reviews, request="").rstrip(" \t")

    def scaffold_phrases(self) -> list[str]:
        """The template's own wording (each literal run of 3+ words), which a request must not copy."""
        literal = re.split(r"\{[a-z_]+\}", self.block + "\n" + self.instruction)
        phrases = [" ".join(part.split()) for chunk in literal for part in chunk.split("\n")]
        return [p.rstrip(":").strip() for p in phrases if len(p.split()) >= 3]


# The fields a template's formatted strings may use; the separators and the instruction are literal.
PLACEHOLDERS = {
    "block": {"items", "reviews", "request"},
    "item": {"name", "city"},
    "item_without_city": {"name"},
    "review": {"sentence"},
}


def _placeholders(name: str, text: str) -> set[str]:
    try:
        return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as error:
        raise RecipeError(f"prompt template: `{name}` is not a valid format string ({error}); write {{{{ and }}}} for literal braces") from None


def load_template(path: str | Path) -> PromptTemplate:
    """Read a YAML template file; unknown keys and non-string values are errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"teacher.prompt.template: file not found: {path}")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise RecipeError(f"teacher.prompt.template: {path} is not valid YAML: {error}") from None
    allowed = {f.name for f in fields(PromptTemplate)}
    if not isinstance(document, dict):
        raise RecipeError(
            f"teacher.prompt.template: {path} must be a mapping with keys {', '.join(sorted(allowed))}"
        )
    for key, value in document.items():
        if key not in allowed:
            raise RecipeError(
                f"teacher.prompt.template: {path}: unknown key `{key}`; allowed: {', '.join(sorted(allowed))}"
            )
        if not isinstance(value, str):
            raise RecipeError(f"teacher.prompt.template: {path}: `{key}` must be a string")
    try:
        return PromptTemplate(**document)
    except RecipeError as error:
        raise RecipeError(
            f"teacher.prompt.template: {path}: {str(error).removeprefix('prompt template: ')}"
        ) from None


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt, which seeds it shows as examples and which of the user's items."""

    text: str
    example_ids: tuple[str, ...]
    items: tuple[ShownItem, ...]
    num_tokens: int


class PromptBuilder:
    """Builds prompts from a pool of seed examples, within a token budget.

    `num_examples` examples are drawn from the pool for every prompt, in a random order, with
    the caller's `rng` (seeded per user and attempt, so a prompt does not depend on batching).
    Seeds of the same user, or sharing half the user's items, are never shown as examples.
    Over `max_tokens`, examples are dropped first; only then the user's last items.
    """

    def __init__(
        self,
        tokenizer,
        examples: Sequence[Seed],
        *,
        template: PromptTemplate | None = None,
        num_examples: int = 3,
        max_tokens: int | None = None,
        chat: bool = False,
    ):
        self.tokenizer = tokenizer
        self.examples = list(examples)
        self.template = template or PromptTemplate()
        self.num_examples = num_examples
        self.max_tokens = max_tokens
        self.chat = chat
        self._blocks = {
            seed.seed_id: self.template.render(seed.history.items, seed.request)
            for seed in self.examples
        }

    @property
    def add_special_tokens(self) -> bool:
        """Whether prompt text is tokenized with the tokenizer's special tokens (not for chat text)."""
        return not self.chat

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=self.add_special_tokens)["input_ids"])

    def build(self, history: History, rng: random.Random, max_tokens: int | None = None) -> Prompt:
        """The prompt for `history`; examples, then the history's last items, are dropped while it
        is over the builder's token budget (or `max_tokens`, where that is smaller)."""
        budget = min((limit for limit in (self.max_tokens, max_tokens) if limit is not None), default=None)
        eligible = [seed for seed in self.examples if not _same_user(seed, history)]
        chosen = rng.sample(eligible, min(self.num_examples, len(eligible)))
        items = history.items
        while True:
            text = self._render(chosen, items)
            num_tokens = self.count_tokens(text)
            if budget is None or num_tokens <= budget:
                break
            if chosen:
                chosen = chosen[:-1]
            elif len(items) > 1:
                items = items[:-1]
            else:
                break
        return Prompt(text, tuple(seed.seed_id for seed in chosen), tuple(items), num_tokens)

    def training_pair(self, seed: Seed, rng: random.Random) -> tuple[Prompt, str]:
        """The prompt for a seed's history (other seeds as examples) and the target text after it."""
        prompt = self.build(seed.history, rng)
        return prompt, self.target_text(prompt, seed.request)

    def target_text(self, prompt: Prompt, request: str) -> str:
        """What the model should write after `prompt`: the request and, in chat, the turn's end."""
        if self.chat:
            messages = [{"role": "user", "content": self._user_message(prompt)}]
            full = self.tokenizer.apply_chat_template(
                [*messages, {"role": "assistant", "content": request}], tokenize=False
            )
            if not full.startswith(prompt.text):
                raise RecipeError(
                    "teacher.prompt.chat: this tokenizer's chat template does not extend the prompt with the "
                    "answer; set teacher.prompt.chat: false"
                )
            return full[len(prompt.text) :]
        unanswered = self.template.render(prompt.items)
        return self.template.render(prompt.items, request)[len(unanswered) :]

    def target_ids(self, prompt: Prompt, request: str) -> list[int]:
        """Token ids of the target, ending with the end-of-sequence token."""
        ids = self.tokenizer(self.target_text(prompt, request), add_special_tokens=False)[
            "input_ids"
        ]
        eos = self.tokenizer.eos_token_id
        return ids if eos is None or eos in ids else [*ids, eos]

    def _body(self, chosen: Sequence[Seed], items: Sequence[ShownItem]) -> str:
        blocks = [self._blocks[seed.seed_id] for seed in chosen] + [self.template.render(items)]
        body = self.template.example_separator.join(blocks)
        if self.template.instruction:
            body = self.template.instruction + self.template.example_separator + body
        return body

    def _render(self, chosen: Sequence[Seed], items: Sequence[ShownItem]) -> str:
        body = self._body(chosen, items)
        if not self.chat:
            return body
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": body}], tokenize=False, add_generation_prompt=True
        )

    def _user_message(self, prompt: Prompt) -> str:
        by_id = {seed.seed_id: seed for seed in self.examples}
        return self._body([by_id[seed_id] for seed_id in prompt.example_ids], prompt.items)


def _same_user(seed: Seed, history: History) -> bool:
    if seed.history.user_id == history.user_id:
        return True
    names = {item.label.casefold() for item in history.items}
    shared = sum(item.label.casefold() in names for item in seed.history.items)
    return shared * 2 >= max(1, min(len(names), len(seed.history.items)))


def prompt_rng(seed: int, *keys: object) -> random.Random:
    """A generator seeded by (seed, keys): the same prompt for the same user and attempt."""
    return random.Random(":".join(str(part) for part in (seed, *keys)))
