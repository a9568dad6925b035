"""The structured prefix of a training request ("Looking for restaurants and food, specifically
pizza, bakeries in Vienna, AT."), made from the history's items the way Pointrec's test requests
are made from their metadata, so training and test requests start alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ..data.text import render, required_fields
from .histories import History

SUB_CATEGORIES = 3


def request_fields(history: History) -> dict[str, str | None]:
    """The history's most common main category, its `SUB_CATEGORIES` most common sub-categories
    (categories lower-cased, as test requests write them), and its most common city and country.

    Ties go to the value seen first, in shown order.
    """
    items = history.items
    main = _most_common(item.main_category for item in items)
    subs = Counter(sub.lower() for item in items for sub in item.sub_categories)
    return {
        "main_category": main.lower() if main else None,
        "sub_categories": ", ".join(sub for sub, _ in subs.most_common(SUB_CATEGORIES)) or None,
        "city": _most_common(item.city for item in items),
        "country": _most_common(item.country for item in items),
    }


def render_prefix(template: str | None, history: History) -> str | None:
    """The prefix for `history`, or None with no template or when a field the template needs
    outside its optional `[...]` parts is unknown for this history."""
    if template is None:
        return None
    fields = request_fields(history)
    if any(fields.get(name) is None for name in required_fields(template)):
        return None
    return render(template, fields) or None


def with_prefix(prefix: str | None, request: str) -> str:
    """`request` with `prefix` in front (one space between), or unchanged without a prefix."""
    return f"{prefix} {request}" if prefix else request


def without_prefix(prefix: str | None, request: str) -> str:
    """`request` as it was before `with_prefix(prefix, request)`."""
    return request.removeprefix(f"{prefix} ") if prefix else request


def _most_common(values: Iterable[str | None]) -> str | None:
    counts = Counter(value for value in values if value)
    return counts.most_common(1)[0][0] if counts else None
