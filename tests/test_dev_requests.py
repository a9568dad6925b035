"""Hand-written dev requests: reading and checking the file, their graded pools as a collection,
their items kept out of training, and every ablation student scored on them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import embedded_or_skip
from fixtures.catalog.catalog_data import (
    poi_records,
    write_catalog_recipe,
    write_pointrec_folder,
    write_yelp_folder,
)
from fixtures.evaluation.tiny_encoders import save_tiny_sentence_transformer

from mint_distill.data.build import prepare_training_data
from mint_distill.data.catalog_entries import POINTREC_PREFIX
from mint_distill.data.dev_requests import dev_collection, read_dev_request_files, read_dev_requests
from mint_distill.data.poi_catalog import load_poi_catalog
from mint_distill.data.pointrec import poi_text
from mint_distill.errors import DataError, RecipeError
from mint_distill.evaluation import evaluate_run, read_qrels, read_run
from mint_distill.evaluation import mean as mean_of
from mint_distill.evaluation.ablations import render_markdown, score_on_dev_requests
from mint_distill.recipe import load_recipe
from mint_distill.recipe.sections.data import TestCollectionSpec


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """The tiny Pointrec-layout catalog and Yelp source, with the POI-catalog cache in tmp_path."""
    monkeypatch.setenv("MINT_DISTILL_HOME", str(tmp_path / "home"))
    folder = tmp_path / "data"
    write_pointrec_folder(folder / "pointrec")
    write_yelp_folder(folder / "yelp", 6)
    return folder


def graded_request(
    request_id: str, city: str, country: str, wanted: str, grade: int, description: str
) -> dict:
    """A request for restaurants in `city` grading the fixture group's unjudged POIs (its first two are
    judged): `grade` for those whose first sub-category is `wanted`, 0 for the others."""
    grades = {
        POINTREC_PREFIX + r["poi_id"]: grade if r["sub_categories"].startswith(wanted) else 0
        for r in poi_records()
        if r["city"] == city and r["main_category"] == "Restaurants and Food" and r["snippets"]
    }
    judged = sorted(grades)[:2]
    return {
        "request_id": request_id,
        "city": city,
        "country": country,
        "main_category": "Restaurants and Food",
        "description": description,
        "judgements": {item: g for item, g in grades.items() if item not in judged},
    }


def seafood_request() -> dict:
    description = "My partner and I want  grilled fish and shellfish by the river, nothing fancy."
    return {
        **graded_request("hw-1", "Lisbon", "PT", "Seafood", 3, description),
        "sub_categories": ["fish"],
    }


def ramen_request() -> dict:
    description = "A bowl of noodle soup late at night after the temples, what do locals eat?"
    return graded_request("hw-2", "Kyoto", "JP", "Ramen", 2, description)


def write_requests(path: Path, records: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_requests_render_like_test_requests_and_rank_their_graded_pools(tmp_path, data_dir):
    path = write_requests(tmp_path / "dev.jsonl", [seafood_request(), ramen_request()])
    spec = TestCollectionSpec()
    collection = dev_collection([path], spec, load_poi_catalog(data_dir / "pointrec"))

    assert collection.requests["hw-1"] == (
        "Looking for restaurants and food, specifically fish in Lisbon, PT. "
        "My partner and I want grilled fish and shellfish by the river, nothing fancy.."
    )
    assert collection.requests["hw-2"].startswith(
        "Looking for restaurants and food in Kyoto, JP. A bowl"
    )
    assert collection.qrels == {
        r["request_id"]: r["judgements"] for r in (seafood_request(), ramen_request())
    }
    assert {qid: set(pool) for qid, pool in collection.pools.items()} == {
        qid: set(grades) for qid, grades in collection.qrels.items()
    }
    records = {r["poi_id"]: r for r in load_poi_catalog(data_dir / "pointrec").table.to_pylist()}
    for item, text in collection.items.items():
        assert text == poi_text(records[item.removeprefix(POINTREC_PREFIX)], spec)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"judgements": {"pointrec:103": 4}}, r"dev\.jsonl:2: `judgements`: .*grades must be 0-3"),
        (
            {"judgements": {"pointrec:103": 0}},
            r"dev\.jsonl:2: `judgements`: .*no item is graded above 0",
        ),
        (
            {"judgements": {"103": 2, "pointrec:104": 1}},
            r"dev\.jsonl:2: `judgements`: .*items are `pointrec:<poi_id>` \(no spaces\), got \['103'\]",
        ),
        # spelled otherwise, an id would match no training item and keep nothing out
        (
            {"judgements": {"pointrec: 103": 2, "pointrec:104 ": 1}},
            r"dev\.jsonl:2: `judgements`: .*got \['pointrec: 103', 'pointrec:104 '\]",
        ),
        ({"judgements": {"pointrec:103": True}}, r"dev\.jsonl:2: `judgements\.pointrec:103`: Input should be a valid integer"),
        ({"description": ""}, r"dev\.jsonl:2: `description`: "),
        ({"request_id": "hw-1"}, r"dev\.jsonl:2: request_id 'hw-1' appears twice"),
        ({"city_name": "Lisbon"}, r"dev\.jsonl:2: `city_name`: Extra inputs are not permitted"),
    ],
)
def test_a_bad_request_names_the_file_line_and_field(tmp_path, change, message):
    path = write_requests(
        tmp_path / "dev.jsonl", [seafood_request(), {**ramen_request(), **change}]
    )
    with pytest.raises(DataError, match=message):
        read_dev_requests(path)


def test_a_graded_item_missing_from_the_catalog_names_the_request(tmp_path, data_dir):
    record = {**seafood_request(), "judgements": {"pointrec:999999": 2, "pointrec:103": 1}}
    path = write_requests(tmp_path / "dev.jsonl", [record])
    catalog = load_poi_catalog(data_dir / "pointrec")
    with pytest.raises(DataError, match=r"dev\.jsonl: request hw-1 grades 'pointrec:999999'"):
        dev_collection([path], TestCollectionSpec(), catalog)


@pytest.mark.parametrize("catalog", ["enabled: true", "enabled: true, source: training", "enabled: false"])
def test_a_graded_item_missing_from_the_catalog_stops_the_data_stage_and_its_check(tmp_path, data_dir, catalog):
    from mint_distill.data.stage import check_data

    record = {**seafood_request(), "judgements": {"pointrec:103": 1, "pointrec:999999": 2}}
    path = write_requests(tmp_path / "dev.jsonl", [ramen_request(), record])
    recipe = load_recipe(write_catalog_recipe(tmp_path, data_dir, f"{{{catalog}, dev_requests: {path}}}"))
    expected = "dev.jsonl:2: request hw-1 grades 'pointrec:999999', which is not in the test collection's POI catalog"
    with pytest.raises(DataError, match=re.escape(expected)):
        prepare_training_data(recipe.data)
    (problem,) = check_data(recipe)
    assert expected in problem


def write_recipe(tmp_path: Path, data_dir: Path, dev_requests: Path | list[Path] | None) -> Path:
    files = json.dumps([str(p) for p in dev_requests]) if isinstance(dev_requests, list) else dev_requests
    catalog = f"{{enabled: true, fraction: 0.9, dev_requests: {files or 'null'}}}"
    sections = """
        students:
          biencoder: {max_seq_length: 64}
        evaluation: {precision: float32}
        """
    return write_catalog_recipe(tmp_path, data_dir, catalog, sections)


def catalog_histories(recipe: Path):
    return prepare_training_data(load_recipe(recipe).data).catalog_histories


def shown(histories) -> list[tuple[str, ...]]:
    return [tuple(item["item_id"] for item in user["items"]) for user in histories.users]


def test_dev_items_are_never_training_items_and_other_histories_stay_as_drawn(tmp_path, data_dir):
    without = shown(catalog_histories(write_recipe(tmp_path, data_dir, None)))
    path = write_requests(tmp_path / "dev.jsonl", [seafood_request()])
    dev_items = set(seafood_request()["judgements"])
    with_dev = catalog_histories(write_recipe(tmp_path, data_dir, path))

    assert any(set(history) & dev_items for history in without)
    assert not any(set(history) & dev_items for history in shown(with_dev))
    assert shown(with_dev) == [history for history in without if not set(history) & dev_items]
    # Every available history is written at this fraction, so the dropped ones are the difference.
    assert with_dev.stats["dev_request_items"] == len(dev_items)
    assert with_dev.stats["histories_with_dev_items"] == len(without) - len(shown(with_dev))


def test_the_items_of_every_dev_request_file_are_kept_out_of_training(tmp_path, data_dir):
    without = shown(catalog_histories(write_recipe(tmp_path, data_dir, None)))
    first = write_requests(tmp_path / "a.jsonl", [seafood_request()])
    second = write_requests(tmp_path / "b.jsonl", [ramen_request()])
    dev_items = set(seafood_request()["judgements"]) | set(ramen_request()["judgements"])
    with_both = catalog_histories(write_recipe(tmp_path, data_dir, [first, second]))

    assert any(set(history) & set(ramen_request()["judgements"]) for history in without)
    assert shown(with_both) == [history for history in without if not set(history) & dev_items]
    assert with_both.stats["dev_request_items"] == len(dev_items)


def test_dev_request_files_are_pooled_and_a_request_id_may_be_in_one_only(tmp_path, data_dir):
    first = write_requests(tmp_path / "a.jsonl", [seafood_request()])
    second = write_requests(tmp_path / "b.jsonl", [ramen_request()])
    catalog = load_poi_catalog(data_dir / "pointrec")
    pooled = dev_collection([first, second], TestCollectionSpec(), catalog)
    together = write_requests(tmp_path / "ab.jsonl", [seafood_request(), ramen_request()])
    both = dev_collection([together], TestCollectionSpec(), catalog)
    for field in ("requests", "pools", "qrels", "items"):
        assert getattr(pooled, field) == getattr(both, field)
    assert pooled.name == "dev-requests:a.jsonl+b.jsonl"

    again = write_requests(tmp_path / "c.jsonl", [ramen_request()])
    with pytest.raises(DataError, match=r"c\.jsonl: request_id 'hw-2' is also in .*b\.jsonl"):
        read_dev_request_files([first, second, again])


@pytest.mark.parametrize(
    ("files", "message"),
    [("[]", "an empty list"), ("[a.jsonl, a.jsonl]", "a file is listed twice")],
)
def test_a_bad_list_of_dev_request_files_names_the_key(tmp_path, data_dir, files, message):
    recipe = write_recipe(tmp_path, data_dir, None)
    with pytest.raises(RecipeError, match=rf"(?s)data\.catalog\.dev_requests.*{message}"):
        load_recipe(recipe, [f"data.catalog.dev_requests={files}"])


@pytest.fixture
def minilm_folder() -> Path:
    """The embedded MiniLM's folder, resolved before a test moves $MINT_DISTILL_HOME."""
    from mint_distill.models import resolve_model

    return Path(resolve_model(embedded_or_skip("all-minilm-l6-v2")).location)


def test_every_student_is_scored_on_the_dev_requests_against_the_full_run(
    tmp_path, minilm_folder, data_dir
):
    path = write_requests(tmp_path / "dev.jsonl", [seafood_request(), ramen_request()])
    recipe = load_recipe(
        write_recipe(tmp_path, data_dir, path), [f"students.biencoder.model={minilm_folder}"]
    )
    main, variant = tmp_path / "runs/dev", tmp_path / "runs/dev-random"
    from sentence_transformers import SentenceTransformer

    SentenceTransformer(str(minilm_folder), device="cpu").save(str(main / "average-biencoder/model"))
    save_tiny_sentence_transformer(variant / "average-biencoder/model")

    scored = score_on_dev_requests({"full": {13: main}, "random": {13: variant}}, recipe)
    written = main / "ablations" / "dev-requests"
    qrels = read_qrels(written / "qrels.txt")
    assert len(qrels) == 2 and sum(len(grades) for grades in qrels.values()) == 20
    from_files = mean_of(evaluate_run(read_run(written / "runs" / "full.trec"), qrels, ["NDCG@5"]))
    # The same two students as one arm of two training seeds: each request scores their mean.
    seeded = score_on_dev_requests({"full": {13: main}, "both": {13: main, 1: variant}}, recipe)

    assert scored["requests"] == 2 and scored["judgements"] == 20
    scores = scored["scores"]
    # The full run's student is MiniLM itself, so it scores exactly as the zero-shot encoder; the
    # variant's random encoder ranks the pools in another order.
    assert scores["full"] == scores["zero-shot"]
    assert from_files["NDCG@5"] == scores["full"]["NDCG@5"]
    assert scores["random"] != scores["full"]
    assert scored["versus_full"]["zero-shot"]["NDCG@5"]["delta"] == 0.0
    assert scored["versus_full"]["random"]["NDCG@10"]["delta"] == pytest.approx(
        scores["random"]["NDCG@10"] - scores["full"]["NDCG@10"]
    )
    for measure in ("NDCG@5", "NDCG@10"):
        mean = (scores["full"][measure] + scores["random"][measure]) / 2
        assert seeded["scores"]["both"][measure] == pytest.approx(mean)
        assert seeded["per_seed"]["both"][1][measure] == pytest.approx(scores["random"][measure])

    table = {
        "student": "biencoder-mint",
        "reference": "zeroshot-mpnet",
        "pool": "judged",
        "requests": 2,
        "alpha": 0.05,
        "method": "randomization",
        "measures": [],
        "dev": None,
        "dev_requests": scored,
        "overrides": {"full": [], "random": ["x=y"]},
        "rows": {
            name: {
                "means": {},
                "versus_full": {},
                "counts": {"generate.requests": None, "filter.pairs_kept": None},
            }
            for name in ("full", "random")
        },
    }
    text = render_markdown(table)
    assert "dev requests NDCG@5" in text and f"{scores['random']['NDCG@5']:.4f} (" in text
    assert (
        f"2 requests written for the target catalog outside the pipeline (`{path}`, 20 judgements"
        in text
    )
