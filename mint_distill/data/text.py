"""Sentences, token counts and the item/request text templates."""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterator, Mapping

# A sentence ends at . ! ? (possibly repeated, possibly closed by quotes or brackets) followed by
# whitespace, or at a line break. Deliberately simple: the rule only has to find short, whole
# sentences in reviews, and the same rule is applied everywhere.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\s*[\r\n]+\s*")
_WHITESPACE = re.compile(r"\s+")
_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")


def sentences(text: str) -> Iterator[str]:
    """The sentences of `text`, in order, whitespace-normalised, empty ones skipped."""
    start = 0
    for match in _SENTENCE_END.finditer(text):
        piece = text[start : match.end()].strip()
        start = match.end()
        if piece:
            yield _WHITESPACE.sub(" ", piece)
    piece = text[start:].strip()
    if piece:
        yield _WHITESPACE.sub(" ", piece)


def count_tokens(text: str) -> int:
    """Whitespace tokens, the unit of the paper's 5-20 token sentence rule and 200 token budget."""
    return len(text.split())


def qualifying_sentences(text: str, min_tokens: int, max_tokens: int, limit: int) -> list[str]:
    """The first `limit` sentences of `text` with between `min_tokens` and `max_tokens` tokens."""
    found: list[str] = []
    if limit <= 0:
        return found
    for sentence in sentences(text):
        if min_tokens <= count_tokens(sentence) <= max_tokens:
            found.append(sentence)
            if len(found) == limit:
                break
    return found


def render(template: str, fields: Mapping[str, object]) -> str:
    """Fill a template; a `[...]` part is dropped when any field it names is empty or missing.

    Fields outside optional parts render as '' when empty. The result is stripped.
    """
    values = _Blank({name: value for name, value in fields.items() if _present(value)})
    return "".join(
        text.format_map(values)
        for optional, names, text in _compiled(template)
        if not optional or all(name in values for name in names)
    ).strip()


def required_fields(template: str) -> frozenset[str]:
    """The fields a template names outside its optional `[...]` parts (they render as '' when empty)."""
    return frozenset(
        name for optional, names, _ in _compiled(template) if not optional for name in names
    )


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


@functools.lru_cache(maxsize=64)
def _compiled(template: str) -> tuple[tuple[bool, tuple[str, ...], str], ...]:
    """(optional?, field names, format string) for each plain and `[...]` part of a template."""
    parts = []
    position = 0
    for match in _OPTIONAL.finditer(template):
        parts.append((False, template[position : match.start()]))
        parts.append((True, match.group(1)))
        position = match.end()
    parts.append((False, template[position:]))
    return tuple(
        (optional, tuple(name for _, name, _, _ in string.Formatter().parse(text) if name), text)
        for optional, text in parts
        if text
    )


def _present(value: object) -> bool:
    return value is not None and str(value).strip() != ""
