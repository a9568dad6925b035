"""Each source layout, read from small hand-written fixtures (broken rows included)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mint_distill.data.build import load_catalog
from mint_distill.data.catalog import ItemCatalog, main_and_sub_categories, render_item_text
from mint_distill.data.reading import ReadReport
from mint_distill.data.sources import open_source
from mint_distill.errors import DataError
from mint_distill.recipe.sections.data import ItemTextSpec, SourceSpec

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def read_all(spec: dict, data_dir: Path = FIXTURES):
    source = open_source(SourceSpec(**spec), data_dir)
    item_report, review_report = ReadReport(), ReadReport()
    catalog = load_catalog(source, item_report) if source.has_item_metadata else ItemCatalog()
    reviews = list(source.iter_reviews(review_report))
    return source, catalog, reviews, item_report, review_report


def test_yelp_academic_tips_are_unrated_reviews_and_broken_rows_are_counted():
    source, catalog, reviews, items, report = read_all(
        {"format": "yelp_academic", "path": "yelp_academic"}
    )
    assert [item.item_id for item in catalog.items.values()] == ["b1", "b2", "b3", "b4", "b5"]
    assert items.missing_fields == {"business_id": 1}
    assert catalog.get("b1").categories == ("Seafood", "Restaurants")
    assert (catalog.get("b1").city, catalog.get("b1").region, catalog.get("b1").country) == (
        "Boston",
        "MA",
        "US",
    )
    assert report.rows == 9 and report.bad_rows == 1 and report.missing_fields == {"text": 1}
    assert report.bad_row_examples[0].startswith(
        f"{source.path / 'yelp_academic_dataset_tip.json'}:6:"
    )
    assert len(reviews) == 7 and {r.user_id for r in reviews} == {"alice", "bob"}
    assert all(r.rating is None for r in reviews)
    assert reviews[0].date == "2011-02-09"
    assert any("tips are read as reviews without a rating" in note for note in source.notes)


def test_yelp_open_layout_reads_string_categories_stars_and_canadian_provinces():
    _, catalog, reviews, _, report = read_all({"format": "yelp_open", "path": "yelp_open"})
    assert catalog.get("y1").categories == ("Pizza", "Restaurants", "Italian")
    assert catalog.get("y1").country == "CA" and catalog.get("y3").country == "US"
    assert catalog.get("y4").categories == ()
    assert [r.rating for r in reviews] == [5.0, 2.0, 4.0, None]
    assert report.bad_rows == 1 and "expected a JSON object" in report.bad_row_examples[0]
    assert report.unparseable_ratings == 1


def test_yelp_open_accepts_the_academic_file_names(tmp_path):
    folder = tmp_path / "yelp"
    folder.mkdir()
    shutil.copy(
        FIXTURES / "yelp_open" / "business.json", folder / "yelp_academic_dataset_business.json"
    )
    shutil.copy(
        FIXTURES / "yelp_open" / "review.json", folder / "yelp_academic_dataset_review.json"
    )
    _, catalog, reviews, _, _ = read_all({"format": "yelp_open", "path": "yelp"}, tmp_path)
    assert len(catalog) == 4 and len(reviews) == 4


def test_yelp_folder_without_review_file_says_where_it_looked(tmp_path):
    (tmp_path / "yelp").mkdir()
    shutil.copy(FIXTURES / "yelp_open" / "business.json", tmp_path / "yelp" / "business.json")
    source = open_source(SourceSpec(format="yelp_open", path="yelp"), tmp_path)
    with pytest.raises(DataError, match=r"no review file \(looked for review.json"):
        source.files()


def test_amazon_json_lines_without_metadata_get_items_from_reviews():
    source, _, reviews, _, report = read_all(
        {"format": "amazon_2014", "path": "amazon/reviews_Tiny_5.json"}
    )
    assert not source.has_item_metadata
    assert any("item text is built from the items' own reviews" in note for note in source.notes)
    assert [(r.user_id, r.item_id, r.rating, r.title) for r in reviews] == [
        ("A1", "B001", 5.0, "Does the job"),
        ("A1", "B002", 2.0, "Meh"),
        ("A2", "B001", 4.0, "Good value"),
    ]
    assert reviews[0].date == "2014-02-28"
    assert report.missing_fields == {"reviewText": 1}


def test_amazon_metadata_in_python_literal_lines_is_joined():
    spec = {
        "format": "amazon_2014",
        "path": "amazon/reviews_Tiny_5.json",
        "items": {"path": "amazon/meta_Tiny.json", "item": "asin"},
    }
    source, catalog, _, items, _ = read_all(spec)
    assert source.has_item_metadata
    assert catalog.get("B001").name == "Stedman Pop Filter"
    assert catalog.get("B001").categories == ("Musical Instruments", "Microphones & Accessories")
    assert items.bad_rows == 1 and ":3:" in items.bad_row_examples[0]


def test_amazon_csv_layout_with_multiline_text_and_a_broken_row():
    _, _, reviews, _, report = read_all(
        {"format": "amazon_2014", "path": "amazon/reviews_tiny.csv"}
    )
    assert [r.user_id for r in reviews] == ["A1", "A2"]
    assert (
        reviews[0].text
        == "This pop filter removes plosives well.\nThe gooseneck holds its position firmly."
    )
    assert report.bad_rows == 1 and report.bad_row_examples[0].split(": ")[0].endswith(
        "reviews_tiny.csv:5"
    )


TABLE = {
    "format": "table",
    "path": "table/reviews.csv",
    "columns": {
        "user": "Reviewer",
        "item": "Restaurant",
        "text": "Review",
        "rating": "Rating",
        "date": "Time",
    },
    "items": {
        "path": "table/items.csv",
        "item": "Name",
        "name": "Name",
        "categories": "Cuisines",
        "default_city": "Hyderabad",
        "default_country": "IN",
    },
}


def test_table_with_item_table_counts_each_missing_field_and_bad_rating():
    _, catalog, reviews, _, report = read_all(TABLE)
    assert len(catalog) == 3 and catalog.get("Spice Route").categories == (
        "North Indian",
        "Biryani",
    )
    assert (
        catalog.get("Cafe Bahar").city == "Hyderabad" and catalog.get("Cafe Bahar").country == "IN"
    )
    assert [(r.user_id, r.item_id, r.rating) for r in reviews] == [
        ("Asha", "Spice Route", 5.0),
        ("Ravi", "Spice Route", None),
        ("Asha", "Cafe Bahar", 4.0),
    ]
    assert report.rows == 5 and report.rows_missing_fields == 2
    assert report.missing_fields == {"Reviewer": 1, "Review": 1}
    assert report.unparseable_ratings == 1


def test_table_replaces_invalid_utf8_and_reads_old_mac_line_endings(tmp_path):
    raw = (
        (FIXTURES / "table" / "reviews.csv")
        .read_bytes()
        .replace(b"\n", b"\r")
        .replace(b"raita", b"ra\xefta")
    )
    (tmp_path / "table").mkdir()
    (tmp_path / "table" / "reviews.csv").write_bytes(raw)
    shutil.copy(FIXTURES / "table" / "items.csv", tmp_path / "table" / "items.csv")
    _, _, reviews, _, report = read_all(TABLE, tmp_path)
    assert len(reviews) == 3 and "ra\ufffdta" in reviews[0].text
    assert report.undecodable_lines == 1 and report.replaced_characters == 1


def test_pseudonymized_users_hide_display_names():
    _, _, reviews, _, _ = read_all({**TABLE, "pseudonymize_users": True})
    ids = [r.user_id for r in reviews]
    assert ids[0] == ids[2] != ids[1]  # Asha twice, Ravi once
    assert all(i.startswith("u") and len(i) == 17 and "Asha" not in i for i in ids)


def test_table_column_missing_from_header_is_an_error_naming_it():
    spec = {**TABLE, "columns": {**TABLE["columns"], "text": "Comment"}}
    source = open_source(SourceSpec(**spec), FIXTURES)
    with pytest.raises(DataError, match=r"column\(s\) 'Comment' not in the CSV header"):
        list(source.iter_reviews())


def test_a_json_lines_column_in_no_row_is_an_error_naming_it(tmp_path):
    rows = [{"user": "u1", "item": "i1", "text": "Lovely.", "score": 1}, {"user": "u2", "item": "i1", "text": "Fine."}]
    (tmp_path / "reviews.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    columns = {"user": "user", "item": "item", "text": "text", "rating": "stars"}
    source = open_source(SourceSpec(format="table", path="reviews.jsonl", columns=columns), tmp_path)
    # unread, every 1-star review would count as liked
    with pytest.raises(DataError, match=r"reviews\.jsonl: column\(s\) 'stars' appear in no row \(recipe key `data\.source\.columns`\)"):
        list(source.iter_reviews())
    source = open_source(SourceSpec(format="table", path="reviews.jsonl", columns={**columns, "rating": "score"}), tmp_path)
    assert [review.rating for review in source.iter_reviews()] == [1.0, None]


def test_item_metadata_columns_of_a_review_table_are_refused_for_the_item_table():
    with pytest.raises(ValueError, match=r"columns\.item_name\s+Extra inputs are not permitted"):
        SourceSpec(**{**TABLE, "columns": {**TABLE["columns"], "item_name": "Restaurant"}})


def test_bad_row_policy_fail_stops_at_the_first_malformed_row():
    source = open_source(
        SourceSpec(format="yelp_academic", path="yelp_academic", on_bad_row="fail"), FIXTURES
    )
    with pytest.raises(DataError, match=r"yelp_academic_dataset_tip.json:6"):
        list(source.iter_reviews(ReadReport()))


def test_missing_source_folder_names_the_recipe_keys(tmp_path):
    source = open_source(SourceSpec(format="yelp_open", path="nowhere", download=False), tmp_path)
    with pytest.raises(
        DataError,
        match=r"nowhere: folder not found \(recipe keys `data.source.path` and `data.data_dir`\)",
    ):
        source.files()


def test_item_text_follows_the_pointrec_poi_template():
    _, catalog, reviews, _, _ = read_all({"format": "yelp_academic", "path": "yelp_academic"})
    spec = ItemTextSpec()
    first = next(r for r in reviews if r.item_id == "b1")
    text = render_item_text(catalog.get("b1"), [(None, first.text)], spec)
    assert text == (
        "Neptune Oyster in Boston, US is known for restaurants and food. Specifically: seafood. "
        "The lobster roll here is worth every minute of the wait."
    )
    assert render_item_text(catalog.get("b4"), [], spec) == (
        "Museum of Fine Arts in Boston, US is known for arts & entertainment. Specifically: museums."
    )


def test_main_category_mapping_and_fallbacks():
    mapping = ItemTextSpec().main_categories
    assert main_and_sub_categories(["Jazz & Blues", "Bars", "Nightlife"], mapping) == (
        "Nightlife",
        ["Jazz & Blues", "Bars"],
    )
    assert main_and_sub_categories(["Hotels", "Hotels & Travel"], mapping) == (
        "Hotels",
        ["Hotels & Travel"],
    )
    assert main_and_sub_categories(["Chinese", "Kebab"], mapping, "Restaurants and Food") == (
        "Restaurants and Food",
        ["Chinese", "Kebab"],
    )
    assert main_and_sub_categories([], mapping) == (None, [])


def test_a_missing_known_source_names_its_origin_when_it_cannot_be_fetched(tmp_path):
    with pytest.raises(DataError) as caught:
        open_source(SourceSpec(format="yelp_academic", path="yelp_boston_tips", download=False), tmp_path)
    message = str(caught.value)
    assert f"yelp_boston_tips is not in {tmp_path / 'yelp_boston_tips'}" in message
    assert "github.com/shenyy/Resturants" in message and "data.source.download" in message


def test_stage_check_accepts_a_fetchable_source_and_reports_a_missing_one(tmp_path, monkeypatch):
    import io
    import urllib.error
    import urllib.request

    from mint_distill.data.stage import check_data
    from mint_distill.recipe import Recipe

    def recipe(**source):
        return Recipe(name="r", data={"data_dir": str(tmp_path / "data"), "source": source})

    def offline(request, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", lambda request, timeout: io.BytesIO())
    assert check_data(recipe(format="yelp_academic", path="yelp_boston_tips")) == []
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    (problem,) = check_data(recipe(format="yelp_academic", path="yelp_boston_tips"))
    assert problem.startswith("data.source: yelp_boston_tips is not in") and "does not answer from here" in problem
    assert not (tmp_path / "data").exists()
    (problem,) = check_data(recipe(format="yelp_academic", path="yelp_boston_tips", download=False))
    assert problem.startswith("data.source:") and "folder not found" in problem


def test_a_data_dir_that_is_a_file_is_refused_naming_the_key(tmp_path):
    from mint_distill.data.stage import check_data
    from mint_distill.recipe import Recipe

    afile = tmp_path / "notes.txt"
    afile.write_text("not a folder")
    spec = {"format": "yelp_academic", "path": "yelp_boston_tips"}
    recipe = Recipe(name="r", data={"data_dir": str(afile), "source": spec})
    assert check_data(recipe) == [f"data.data_dir: {afile} is a file, not a folder"]
    with pytest.raises(DataError, match=r"notes.txt is a file, not a folder.*data\.data_dir"):
        open_source(SourceSpec(**spec), afile)
    assert afile.read_text() == "not a folder"


def test_a_list_or_object_where_text_belongs_is_a_bad_row_naming_file_and_line(tmp_path):
    folder = tmp_path / "yelp"
    folder.mkdir()
    businesses = [
        {"business_id": "b1", "name": "Oyster Bar", "city": "Boston", "state": "MA", "categories": ["Seafood"]},
        {"business_id": "b2", "name": "Cafe", "city": ["Boston"], "state": "MA"},
        {"business_id": "b3", "name": {"en": "Deli"}, "city": "Boston", "state": "MA"},
        {"business_id": "b4", "name": "Bar", "city": "Boston", "categories": [{"title": "Bars"}]},
    ]
    tips = [{"user_id": "u1", "business_id": "b1", "text": "Great oysters."}, {"user_id": "u1", "business_id": "b1", "text": ["Fine."]}]
    business_file = folder / "yelp_academic_dataset_business.json"
    business_file.write_text("".join(json.dumps(record) + "\n" for record in businesses))
    (folder / "yelp_academic_dataset_tip.json").write_text("".join(json.dumps(record) + "\n" for record in tips))
    _, catalog, reviews, items, report = read_all({"format": "yelp_academic", "path": "yelp"}, tmp_path)
    assert list(catalog.items) == ["b1"] and [review.text for review in reviews] == ["Great oysters."]
    assert items.bad_row_examples == [
        f"{business_file}:2: `city` is a JSON array, not text",
        f"{business_file}:3: `name` is a JSON object, not text",
        f"{business_file}:4: `categories` is a JSON array, not text or a list of strings",
    ]
    assert report.bad_row_examples == [f"{folder / 'yelp_academic_dataset_tip.json'}:2: `text` is a JSON array, not text"]
    with pytest.raises(DataError, match=r"yelp_academic_dataset_business.json:2: `city` is a JSON array"):
        read_all({"format": "yelp_academic", "path": "yelp", "on_bad_row": "fail"}, tmp_path)

    table = tmp_path / "reviews.jsonl"
    rows = [{"user": 7, "item": 42, "text": "Good strings."}, {"user": 8, "item": 42, "text": "Fine.", "title": {"a": 1}}]
    table.write_text("".join(json.dumps(row) + "\n" for row in rows))
    columns = {"user": "user", "item": "item", "text": "text", "title": "title"}
    _, _, reviews, _, report = read_all({"format": "table", "path": "reviews.jsonl", "columns": columns}, tmp_path)
    assert [(review.user_id, review.item_id) for review in reviews] == [("7", "42")]  # numbers are ids
    assert report.bad_row_examples == [f"{table}:2: `title` is a JSON object, not text"]
