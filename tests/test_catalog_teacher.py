"""Request prefixes and the template teacher, through the generate and filter stages."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures.catalog.catalog_data import (
    write_catalog_recipe,
    write_pointrec_folder,
    write_yelp_folder,
)
from fixtures.evaluation.tiny_encoders import save_tiny_sentence_transformer
from fixtures.teacher.tiny_teacher import SEEDS, save_tiny_teacher

from mint_distill.cli import cli
from mint_distill.data.text import render
from mint_distill.errors import MintError, RecipeError
from mint_distill.filtering.records import read_requests
from mint_distill.io import read_jsonl
from mint_distill.pipeline import all_stages, run_pipeline
from mint_distill.recipe import load_recipe
from mint_distill.recipe.sections.data import TestCollectionSpec
from mint_distill.recipe.sections.teacher import TeacherSection
from mint_distill.teacher.histories import History, ShownItem, load_seeds, load_users
from mint_distill.teacher.prefix import render_prefix, request_fields
from mint_distill.teacher.report import teacher_report

PREFIX = TeacherSection().request_prefix
USERS = 4


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINT_DISTILL_HOME", str(tmp_path / "home"))


def item(name, main=None, subs=(), city="Lisbon", country="PT") -> ShownItem:
    return ShownItem(
        name=name,
        city=city,
        sentence=f"{name} is a fine place to spend an evening.",
        item_id=name.lower(),
        country=country,
        main_category=main,
        sub_categories=tuple(subs),
    )


def test_prefix_takes_the_most_common_values_like_a_test_request():
    history = History(
        "u",
        (
            item("A", "Restaurants and Food", ["Seafood", "Bakeries"]),
            item("B", "Restaurants and Food", ["seafood"], city="Porto"),
            item("C", "Nightlife", ["Wine Bars", "Bakeries", "Fado"]),
            item("D", None, ["Fado"], country=None),
        ),
    )
    # main: 2 x restaurants; subs: seafood 2, bakeries 2, fado 2 (first seen first), wine bars 1
    assert render_prefix(PREFIX, history) == (
        "Looking for restaurants and food, specifically seafood, bakeries, fado in Lisbon, PT."
    )
    # the same words the test collection's query template puts before a request's description
    query = render(
        TestCollectionSpec().query_template, {**request_fields(history), "description": "Hi"}
    )
    assert query == render_prefix(PREFIX, history) + " Hi."


def test_prefix_drops_optional_parts_and_is_left_out_when_a_required_field_is_unknown():
    no_subs = History("u", (item("A", "Nightlife", city="Kyoto", country="JP"),))
    assert render_prefix(PREFIX, no_subs) == "Looking for nightlife in Kyoto, JP."
    no_country = History("u", (item("A", "Nightlife", ["Bars"], country=None),))
    assert render_prefix(PREFIX, no_country) is None
    assert render_prefix(None, no_subs) is None


def write_recipe(tmp_path: Path, **settings: str) -> Path:
    data = tmp_path / "data"
    if not data.exists():
        write_pointrec_folder(data / "pointrec")
        write_yelp_folder(data / "yelp", USERS)
    sections = f"""
        teacher:
          kind: {settings.get("kind", "template")}
          model: {settings.get("model", tmp_path / "no-such-model")}
          generation: {{seed: 3}}
        filter: {{method: random, keep_fraction: 0.5}}
        """
    return write_catalog_recipe(tmp_path, data, "{enabled: true, fraction: 0.5}", sections, name="template")


def text_stages(recipe):
    return [s for s in all_stages() if s.name in ("data", "tune-teacher", "generate", "teacher-report", "filter")]


def test_the_teacher_report_measures_generated_requests_without_their_prefix(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from mint_distill.teacher import report, report_stage

    shown = [{"item_id": f"bar{n}", "name": f"Bar {n}", "city": "Lisbon", "country": "PT", "main_category": "Nightlife",
              "sub_categories": ["Fado"], "sentence": "Live fado every night.", "categories": ["Nightlife", "Fado"]}
             for n in range(3)]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "users.jsonl").write_text(json.dumps({"user_id": "u1", "split": "train", "items": shown}) + "\n")
    history = load_users(tmp_path / "data" / "users.jsonl")[0]
    prefix = render_prefix(PREFIX, history)
    assert prefix == "Looking for nightlife, specifically fado in Lisbon, PT."
    (tmp_path / "generate").mkdir()
    record = {"user_id": "u1", "origin": "history", "request": f"{prefix} Somewhere quiet with fado.", "item_ids": ["bar0"]}
    (tmp_path / "generate" / "requests.jsonl").write_text(json.dumps(record) + "\n")
    recipe = load_recipe(write_catalog_recipe(tmp_path, tmp_path))
    measured = {}
    monkeypatch.setattr(report, "measure_row", lambda name, records, catalog, k: measured.setdefault(name, records))
    report_stage._generated_row(SimpleNamespace(recipe=recipe, upstream=lambda stage: tmp_path / stage), [history], None, 10)
    # the sampled and seed rows have no prefix; naming the city and category would lift this row's round trip
    assert measured == {"generated requests (all users)": [{"request": "Somewhere quiet with fado.", "items": [{"item_id": "bar0"}]}]}


def test_template_teacher_writes_requests_the_filter_reads(tmp_path):
    recipe_file = write_recipe(tmp_path)
    recipe = load_recipe(recipe_file)  # teacher.model does not exist: no model is loaded
    result = run_pipeline(recipe, stages=text_stages(recipe), quiet=True)
    assert result.ran == ["data", "generate", "filter"]  # tune-teacher is disabled for templates
    root = tmp_path / "runs" / "template"
    users = {u.user_id: u for u in load_users(root / "data" / "users.jsonl")}
    records = list(read_jsonl(root / "generate" / "requests.jsonl"))
    assert [r["request_id"] for r in records] == [f"{user}#0" for user in users]
    for record in records:
        history = users[record["user_id"]]
        assert record["origin"] == history.origin and record["split"] == history.split
        assert record["item_ids"] == [i.item_id for i in history.items]
        used = record["settings"]["snippet_items"]
        assert len(used) == 2 and set(used) <= set(record["item_ids"])
        sentences = {i.item_id: i.sentence for i in history.items}
        prefix = render_prefix(PREFIX, history)
        assert prefix is not None
        assert record["request"] == f"{prefix} {sentences[used[0]]} {sentences[used[1]]}"
    summary = json.loads((root / "generate" / "summary.json").read_text())
    assert summary["teacher"] == "template"
    assert summary["requests_by_origin"] == {"catalog": USERS, "history": USERS}
    assert summary["users_without_prefix"] == 0
    with pytest.raises(MintError, match="a teacher report is written where an LLM teacher writes requests"):
        teacher_report(root)  # the report's setting is on: only LLM teachers are compared
    printed = CliRunner().invoke(cli, ["teacher-report", str(recipe_file)])
    assert printed.exit_code == 2 and "no teacher report to write: a teacher report is written where" in printed.output
    requests = read_requests(root / "generate" / "requests.jsonl")
    pairs = list(read_jsonl(root / "filter" / "pairs.jsonl"))
    assert len(pairs) == sum(len(r.item_ids) for r in requests)
    for request in requests:
        kept = [p for p in pairs if p["request_id"] == request.request_id and p["kept"]]
        assert len(kept) == math.ceil(len(request.item_ids) * 0.5)


def test_template_requests_are_deterministic_given_the_seed(tmp_path):
    def requests(seed: int) -> list[str]:
        recipe = load_recipe(write_recipe(tmp_path), [f"teacher.generation.seed={seed}"])
        run_pipeline(recipe, stages=text_stages(recipe), until="generate", quiet=True)
        return [
            r["request"] for r in read_jsonl(tmp_path / "runs/template/generate/requests.jsonl")
        ]

    first = requests(3)
    assert requests(3) == first
    assert requests(4) != first


def test_template_pattern_and_prefix_are_checked(tmp_path):
    path = write_recipe(tmp_path)
    with pytest.raises(RecipeError, match="teacher.template.pattern"):
        load_recipe(path, ["teacher.template.pattern={prefix} {street}"])
    with pytest.raises(RecipeError, match="teacher.request_prefix"):
        load_recipe(path, ["teacher.request_prefix=Looking for {description}"])
    recipe = load_recipe(
        path, ["teacher.request_prefix=null", "teacher.template.pattern=[{city}: ]{snippets}"]
    )
    run_pipeline(recipe, stages=text_stages(recipe), until="generate", quiet=True)
    for record in read_jsonl(tmp_path / "runs/template/generate/requests.jsonl"):
        assert not record["request"].startswith("Looking for")
        assert record["request"].startswith(("Boston: ", "Lisbon: ", "Kyoto: "))


def test_llm_requests_carry_the_prefix(tmp_path):
    from mint_distill.teacher.gates import GateSettings
    from mint_distill.teacher.generation import RequestSampler, load_teacher
    from mint_distill.teacher.prompts import PromptBuilder
    from mint_distill.teacher.synthesis import (
        REJECTED,
        REQUESTS,
        merge_shards,
        synthesize,
        work_units,
    )

    model, tokenizer = load_teacher(str(save_tiny_teacher(tmp_path / "teacher")))
    builder = PromptBuilder(tokenizer, load_seeds(SEEDS)[:2], num_examples=1, max_tokens=300)
    histories = [
        History(
            f"catalog:{n}",
            (item("A", "Nightlife", ["Bars"]), item("B", "Nightlife")),
            origin="catalog",
        )
        for n in range(3)
    ]
    units = work_units(histories, 1)
    sampler = RequestSampler(model, tokenizer, max_new_tokens=8, stop=[])
    lenient = GateSettings(
        min_words=0, max_words=1000, max_repetition=1.0, copy_span=1000, check_item_names=False
    )
    out = tmp_path / "out"
    options = {"builder": builder, "sampler": sampler, "gates": lenient, "max_retries": 0}
    synthesize(units, out, request_prefix=PREFIX, **options)
    merge_shards(out, units)
    # accepted, or rejected as unfinished (cut at 8 tokens): both are stored behind the prefix
    records = list(read_jsonl(out / REQUESTS)) + list(read_jsonl(out / REJECTED))
    assert sorted(r["request_id"] for r in records) == [u.request_id for u in units]
    prefix = "Looking for nightlife, specifically bars in Lisbon, PT. "
    for record in records:
        assert record["origin"] == "catalog"
        assert record["request"].startswith(prefix) and len(record["request"]) > len(prefix)


def test_teacher_kinds_count_catalog_kind_only_with_catalog_histories():
    mixed = TeacherSection(kind="template", catalog_kind="llm")
    assert (mixed.kind_for("history"), mixed.kind_for("catalog")) == ("template", "llm")
    assert mixed.kinds(catalog_enabled=True) == {"template", "llm"}
    assert mixed.kinds(catalog_enabled=False) == {"template"}
    assert TeacherSection(kind="llm").kind_for("catalog") == "llm"


def test_llm_writes_for_users_and_the_template_for_catalog_histories(tmp_path):
    teacher = save_tiny_teacher(tmp_path / "teacher")
    recipe_file = write_recipe(tmp_path, kind="llm", model=str(teacher))
    settings = [
        "teacher.catalog_kind=template",
        "teacher.tuning.enabled=false",
        "teacher.prompt.num_examples=0",
        "teacher.generation.max_new_tokens=8",
        "teacher.generation.min_words=0",
        "teacher.generation.max_repetition=1.0",
        "teacher.generation.check_item_names=false",
        "teacher.generation.max_retries=0",
    ]
    recipe = load_recipe(recipe_file, [*settings, "teacher.report.enabled=false"])
    result = run_pipeline(recipe, stages=text_stages(recipe), until="generate", quiet=True)
    assert result.ran == ["data", "generate"]
    root = tmp_path / "runs" / "template"
    users = load_users(root / "data" / "users.jsonl")
    by_id = {u.user_id: u for u in users}
    records = list(read_jsonl(root / "generate" / "requests.jsonl"))
    rejected = list(read_jsonl(root / "generate" / "rejected.jsonl"))
    catalog = [r for r in records if r["origin"] == "catalog"]
    assert sorted(r["user_id"] for r in catalog) == sorted(u.user_id for u in users if u.origin == "catalog")
    for record in catalog:
        history = by_id[record["user_id"]]
        sentences = {i.item_id: i.sentence for i in history.items}
        snippets = " ".join(sentences[item] for item in record["settings"]["snippet_items"])
        assert record["settings"]["teacher"] == "template"
        assert record["request"] == f"{render_prefix(PREFIX, history)} {snippets}"
    written_by_llm = [r for r in records + rejected if r["origin"] == "history"]
    assert sorted(r["user_id"] for r in written_by_llm) == sorted(u.user_id for u in users if u.origin == "history")
    assert all(r["settings"]["teacher"] == str(teacher) for r in written_by_llm)
    order = [u.user_id for u in users]
    assert [r["user_id"] for r in records] == sorted((r["user_id"] for r in records), key=order.index)
    summary = json.loads((root / "generate" / "summary.json").read_text())
    assert summary["teacher_by_origin"] == {"catalog": "template", "history": "llm"}
    assert summary["requests_by_origin"]["catalog"] == summary["template_requests"] == USERS
    assert summary["requests"] == len(records) and summary["users"] == len(users)

    # The teacher report measures the LLM's requests only, and says so; generate stays fresh.
    encoder = save_tiny_sentence_transformer(tmp_path / "encoder")
    reported = load_recipe(recipe_file, [*settings, "teacher.report.enabled=true", f"teacher.report.encoder={encoder}"])
    result = run_pipeline(reported, stages=text_stages(reported), until="teacher-report", quiet=True)
    assert result.ran == ["teacher-report"]
    generated = result.summaries["teacher-report"]["rows"][-1]
    assert generated["teacher"] == "generated requests (all users' histories)"
    assert generated["requests"] == len(records) - USERS
