"""The `data` pipeline stage: review histories (and catalog pseudo-histories) -> users.jsonl,
items.jsonl, reviews.jsonl, stats.json."""

from __future__ import annotations

from pathlib import Path

from ..errors import MintError
from ..pipeline import RUN_CACHE, StageContext, register_stage
from ..recipe import Recipe
from .download import KNOWN_DATASETS, POINTREC, fetch_problem
from .paths import data_dir, under


def source_files(recipe: Recipe) -> list[Path]:
    """The source's files and, with catalog adaptation, the catalog's (none yet when missing;
    `check_data` reports that)."""
    from .pseudo_histories import catalog_input_files
    from .sources import open_source

    try:
        files = open_source(recipe.data.source, data_dir(recipe.data.data_dir), fetch=False).files()
    except MintError:
        files = []
    return [*files, *catalog_input_files(recipe.data)]


def check_data(recipe: Recipe) -> list[str]:
    """Problems that would stop the stage: a missing source the tool cannot fetch, a missing file."""
    from .sources import open_source

    spec = recipe.data.source
    try:
        base = data_dir(recipe.data.data_dir)
        if base.exists() and not base.is_dir():
            return [f"data.data_dir: {base} is a file, not a folder"]
        path = under(base, spec.path)
        dataset = KNOWN_DATASETS.get(Path(spec.path).name)
        if not path.exists() and spec.download and dataset is not None:  # fetched when the stage runs
            problem = fetch_problem(dataset, path, download=True, key="data.source")
            return ([f"data.source: {problem}"] if problem else []) + _check_catalog(recipe)
        open_source(spec, base, fetch=False).files()
    except MintError as error:
        return [f"data.source: {error}"]
    return _check_catalog(recipe)


def _check_catalog(recipe: Recipe) -> list[str]:
    from .pseudo_histories import collection_folder

    catalog, test = recipe.data.catalog, recipe.data.test
    if catalog.dev_requests is not None:
        from .pseudo_histories import check_dev_requests

        try:
            check_dev_requests(recipe.data, fetch=False)
        except MintError as error:
            return [str(error)]
    if not catalog.enabled or catalog.source != "test":
        return []
    problem = fetch_problem(POINTREC, collection_folder(recipe.data), download=test.download, key="data.test")
    return [f"data.catalog: source `test` reads the test collection's catalog, but {problem}"] if problem else []


@register_stage(
    "data",
    summary="select users, liked items and review sentences; render item texts",
    config_keys=(
        "data.data_dir",
        "data.source",
        "data.selection",
        "data.item_text",
        "data.catalog",
        # how catalog histories render test-collection items
        "data.test.path",
        "data.test.poi_template",
        "data.test.snippet_template",
        "data.test.max_snippets",
    ),
    # Counts of what selection and exclusions removed: naming other dev requests can change them
    # without changing a line of the training data, and that should not rerun the teacher.
    reports=("stats.json",),
    input_files=source_files,
    check=check_data,
)
def run_data_stage(ctx: StageContext) -> dict:
    from .build import write_training_data

    # Vectors of `data.catalog.similar_by` go to the run folder's cache, as the encoder filter's do.
    stats = write_training_data(ctx.recipe.data, ctx.dir, cache_dir=ctx.run_root / RUN_CACHE)
    users = stats["selection"]["users"]
    summary = {
        "reviews": stats["source"]["reviews"],
        "users": users["kept"],
        "train_users": users["train"],
        "dev_users": users["dev"],
        "items": stats["items"]["written"],
        "shown_items": stats["selection"]["items"]["shown"],
    }
    catalog = stats.get("catalog")
    if catalog is not None:
        summary.update(
            catalog_source=catalog["source"],
            catalog_histories=catalog["histories"],
            catalog_items=catalog["items_shown"],
            user_histories_dropped=catalog["user_histories_dropped"],
        )
        if not ctx.recipe.data.catalog.exclude_judged:
            summary["judged_items_allowed"] = True  # read by the evaluation report
        elif "judged_in_catalog" in catalog:
            summary["judged_excluded"] = catalog["judged_in_catalog"]
        if catalog["dev_request_items"]:
            summary["dev_request_items_excluded"] = catalog["dev_request_items"]
    return summary
