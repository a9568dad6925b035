"""Rich tables for `mint-distill data stats`: source counts, the selection funnel, catalog
histories, test coverage."""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..recipe.sections.data import TestCollectionSpec


def source_table(stats: dict) -> Group:
    """What was read from the source, including everything skipped or repaired."""
    source = stats["source"]
    items = stats["items"]
    table = Table(
        "count",
        "value",
        title=f"source {source['name']} ({source['format']})",
        title_justify="left",
    )
    for label, section in (
        ("item file", source["item_metadata"]),
        ("review files", source["review_files"]),
    ):
        if section is None:
            continue
        table.add_row(f"{label}: rows", f"{section['rows']:,}")
        table.add_row(f"{label}: malformed rows skipped", f"{section['bad_rows']:,}")
        table.add_row(
            f"{label}: rows skipped for empty fields", f"{section['rows_missing_fields']:,}"
        )
        for name, count in section["missing_fields"].items():
            table.add_row(f"  field `{name}` empty or missing", f"{count:,}")
        table.add_row(f"{label}: lines with undecodable bytes", f"{section['undecodable_lines']:,}")
        if section["unparseable_ratings"]:
            table.add_row(
                f"{label}: ratings that are not numbers (read as unrated)",
                f"{section['unparseable_ratings']:,}",
            )
    table.add_row("reviews", f"{source['reviews']:,}")
    table.add_row("  with a rating", f"{source['rated_reviews']:,}")
    table.add_row(
        "  of items not in the item file (skipped)", f"{source['reviews_of_unknown_items']:,}"
    )
    table.add_row("users", f"{source['users']:,}")
    table.add_row("items in the catalog", f"{items['catalog']:,}")
    table.add_row("  duplicate item records (ignored)", f"{items['duplicate_item_records']:,}")
    table.add_row("  reviewed", f"{source['items_reviewed']:,}")
    table.add_row("  with review sentences for their text", f"{items['with_review_sentences']:,}")
    table.add_row("  in blocklisted categories (left out)", f"{items['blocklisted']:,}")
    table.add_row("  written to items.jsonl", f"{items['written']:,}")
    notes = [f"item text from: {items['text_from']}", *source["notes"]]
    for section in (source["item_metadata"], source["review_files"]):
        if section:
            notes.extend(f"malformed: {example}" for example in section["bad_row_examples"])
    return Group(table, *(Text(f"  note: {note}") for note in notes), Text(""))


def selection_tables(stats: dict) -> list[Table]:
    """The user funnel, reviews removed per filter, and the per-user item limits."""
    selection = stats["selection"]
    funnel = selection["users"]
    users = Table(
        "step", "users removed", "users left", title="selection: users", title_justify="left"
    )
    left = funnel["users"]
    users.add_row("all users", "", f"{left:,}")
    for key, label in (
        ("fewer_reviews_than_min_liked", "fewer reviews than min_liked"),
        ("too_few_usable_liked_items", "fewer usable liked items than min_liked"),
        ("too_many_usable_liked_items", "more usable liked items than max_liked"),
        ("over_max_users", "beyond max_users"),
    ):
        left -= funnel[key]
        users.add_row(label, f"{funnel[key]:,}", f"{left:,}")
    users.add_row(
        "kept", "", f"{funnel['kept']:,} (train {funnel['train']:,}, dev {funnel['dev']:,})"
    )

    reviews = Table(
        "filter",
        "reviews removed",
        title="selection: reviews of candidate users",
        title_justify="left",
    )
    for key, label in (
        ("unknown_item", "item not in the catalog"),
        ("blocklisted_category", "item in a blocklisted category"),
        ("not_liked", "rated below the user's own mean"),
        ("no_short_sentence", "no sentence within the token range"),
    ):
        reviews.add_row(label, f"{selection['reviews_removed_among_candidates'][key]:,}")

    limits = selection["items"]
    items = Table("count", "items", title="selection: items of kept users", title_justify="left")
    items.add_row("usable liked items", f"{limits['usable']:,}")
    items.add_row("over max_items (sampled out)", f"{limits['over_max_items']:,}")
    items.add_row("over max_tokens (halved out)", f"{limits['over_max_tokens']:,}")
    items.add_row("shown to the teacher", f"{limits['shown']:,}")
    return [users, reviews, items]


def catalog_table(stats: dict) -> Table:
    """Catalog adaptation: eligible items, groups, pseudo-histories and judged items kept out."""
    catalog = stats["catalog"]
    group_by = ", ".join(catalog["group_by"]) or "nothing (one group)"
    table = Table(
        "count",
        "value",
        title=f"catalog histories (source: {catalog['source']}, grouped by {group_by})",
        title_justify="left",
    )
    rows = [
        ("catalog_items", "items in the catalog"),
        ("with_snippets", "  with a web snippet"),
        ("blocklisted", "  in blocklisted categories (left out)"),
        ("judged_ids", "items judged in the test collection"),
        ("judged_in_catalog", "  of them in this catalog (never used)"),
        ("without_sentence", "items with no usable sentence (left out)"),
        ("eligible", "eligible items"),
        ("groups", "groups"),
        ("groups_too_small", f"  with fewer than {catalog['items_per_history']} items (skipped)"),
        ("dev_request_items", "items graded by the dev requests (never used)"),
        ("histories_with_dev_items", "  histories holding one (dropped)"),
        ("histories_available", "histories available (each item in one)"),
        ("histories", "catalog histories written"),
        ("items_shown", "  items shown in them"),
        ("items_added", "  items added to items.jsonl"),
        ("user_histories_dropped", "user histories dropped (fraction 1)"),
    ]
    for key, label in rows:
        if key in catalog:
            table.add_row(label, f"{catalog[key]:,}")
    table.add_row("  train / dev", f"{catalog['train']:,} / {catalog['dev']:,}")
    return table


def coverage_table(rows: list[dict], spec: TestCollectionSpec) -> Table:
    """Per request: judged POIs, how many have text (a record), relevant ones, pool sizes, kept or not."""
    title = (
        f"test collection coverage (pool: {spec.pool}, require_text: {spec.require_text}, "
        f"min_judged_with_text: {spec.min_judged_with_text})"
    )
    caption = (
        "judged: POIs judged; text: of them with a record (text); rel: relevant (grade > 0) with text; "
        "hits: relevant in the pool; city, citycat: sizes of those pools. "
        "The qid's last letters name the category (AE, AL, NL, RF)."
    )
    table = Table(
        title=title,
        caption=caption,
        title_justify="left",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("qid", no_wrap=True, min_width=11)
    table.add_column("city", no_wrap=True, max_width=10, overflow="ellipsis")
    for header in ("judged", "text", "rel", "pool", "hits", "city", "citycat", "kept"):
        table.add_column(header, justify="right", no_wrap=True, min_width=len(header))
    for row in rows:
        table.add_row(
            row["qid"],
            row["city"],
            str(row["judged"]),
            str(row["judged_with_text"]),
            str(row["relevant_with_text"]),
            str(row["pool_size"]),
            str(row["relevant_in_pool"]),
            str(row["city_pool_size"]),
            str(row["citycat_pool_size"]),
            "yes" if row["kept"] else "no",
        )
    kept = [row for row in rows if row["kept"]]
    table.add_section()
    table.add_row(
        "all",
        "",
        *(
            str(sum(r[key] for r in rows))
            for key in (
                "judged",
                "judged_with_text",
                "relevant_with_text",
                "pool_size",
                "relevant_in_pool",
            )
        ),
        "",
        "",
        str(len(kept)),
    )
    return table
