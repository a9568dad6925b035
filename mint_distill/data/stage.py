"""The `data` pipeline stage: review histories -> users.jsonl, items.jsonl, reviews.jsonl, stats.json."""

from __future__ import annotations

from pathlib import Path

from ..errors import MintError
from ..pipeline import StageContext, register_stage
from ..recipe import Recipe
from .download import KNOWN_DATASETS
from .paths import data_dir, under


def source_files(recipe: Recipe) -> list[Path]:
    """The source's files (none yet when it is missing; `check_data` reports that)."""
    from .sources import open_source

    try:
        return open_source(recipe.data.source, data_dir(recipe.data.data_dir), fetch=False).files()
    except MintError:
        return []


def check_data(recipe: Recipe) -> list[str]:
    """Problems that would stop the stage: a missing source the tool cannot fetch, a missing file."""
    from .sources import open_source

    spec = recipe.data.source
    try:
        base = data_dir(recipe.data.data_dir)
        path = under(base, spec.path)
        if not path.exists() and spec.download and Path(spec.path).name in KNOWN_DATASETS:
            return []  # fetched when the stage runs
        open_source(spec, base, fetch=False).files()
    except MintError as error:
        return [f"data.source: {error}"]
    return []


@register_stage(
    "data",
    summary="select users, liked items and review sentences; render item texts",
    config_keys=("data.data_dir", "data.source", "data.selection", "data.item_text"),
    input_files=source_files,
    check=check_data,
)
def run_data_stage(ctx: StageContext) -> dict:
    from .build import write_training_data

    stats = write_training_data(ctx.recipe.data, ctx.dir)
    users = stats["selection"]["users"]
    return {
        "reviews": stats["source"]["reviews"],
        "users": users["kept"],
        "train_users": users["train"],
        "dev_users": users["dev"],
        "items": stats["items"]["written"],
        "shown_items": stats["selection"]["items"]["shown"],
    }
