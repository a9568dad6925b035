"""Quality gates for a generated request: each returns a reason name when the text fails it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .histories import ShownItem

REASONS = (
    "empty",
    "unfinished",
    "too_short",
    "too_long",
    "repetition",
    "copies_prompt",
    "names_item",
)
_WORD = re.compile(r"[\w']+")


@dataclass(frozen=True)
class GateSettings:
    """Thresholds (recipe keys under `teacher.generation`)."""

    min_words: int = 25
    max_words: int = 200
    max_repetition: float = 0.2
    copy_span: int = 8
    check_item_names: bool = True


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def repetition(text: str, n: int = 3) -> float:
    """Share of word n-grams that repeat an earlier n-gram (0 for fresh text, near 1 for loops)."""
    tokens = words(text)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def check_request(
    text: str,
    *,
    prompt_text: str,
    items: Sequence[ShownItem],
    scaffold: Sequence[str],
    settings: GateSettings,
    finished: bool = True,
) -> list[str]:
    """Every gate `text` fails, in the order of `REASONS` (an empty list means accepted).

    `finished=False` marks a text cut off by the token limit rather than ended by the model.
    """
    tokens = words(text)
    if not tokens:
        return ["empty"]
    reasons = [] if finished else ["unfinished"]
    if len(tokens) < settings.min_words:
        reasons.append("too_short")
    if len(tokens) > settings.max_words:
        reasons.append("too_long")
    if repetition(text) > settings.max_repetition:
        reasons.append("repetition")
    if _copies(tokens, words(prompt_text), settings.copy_span) or _has_scaffold(text, scaffold):
        reasons.append("copies_prompt")
    if settings.check_item_names and any(_names(text, item.label) for item in items):
        reasons.append("names_item")
    return reasons


def _copies(tokens: list[str], prompt_tokens: list[str], span: int) -> bool:
    """True when `span` consecutive words of the output also occur together in the prompt."""
    if len(tokens) < span:
        return False
    seen = {tuple(prompt_tokens[i : i + span]) for i in range(len(prompt_tokens) - span + 1)}
    return any(tuple(tokens[i : i + span]) in seen for i in range(len(tokens) - span + 1))


def _has_scaffold(text: str, scaffold: Sequence[str]) -> bool:
    folded = " ".join(words(text))
    return any(" ".join(words(phrase)) in folded for phrase in scaffold if words(phrase))


def _names(text: str, name: str) -> bool:
    """Whether `text` names the item. Multi-word names match in any case; a one-word name only
    with its own capitalisation, so "Drink" the bar does not catch "a drink"."""
    parts = words(name)
    if not parts:
        return False
    if len(parts) > 1:
        return (
            re.search(r"\b" + r"\W+".join(map(re.escape, parts)) + r"\b", text.casefold())
            is not None
        )
    if len(name.strip()) < 4:
        return False
    return re.search(r"(?<![\w'])" + re.escape(name.strip()) + r"(?![\w'])", text) is not None
