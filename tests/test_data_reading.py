"""Streaming readers: line endings, undecodable bytes, malformed rows, CSV headers, gzip."""

from __future__ import annotations

import gzip
import io
import json

import pytest

from mint_distill.data import reading
from mint_distill.data.reading import (
    ReadReport,
    binary_lines,
    iter_csv,
    iter_jsonl,
    split_categories,
)
from mint_distill.data.text import qualifying_sentences, render, sentences
from mint_distill.errors import DataError


@pytest.mark.parametrize("chunk", [1, 2, 3, 1 << 20])
def test_binary_lines_split_on_every_newline_convention_across_chunks(monkeypatch, chunk):
    monkeypatch.setattr(reading, "_CHUNK", chunk)
    data = b"ab\r\ncd\ref\n\ngh\r\n\rij"
    assert list(binary_lines(io.BytesIO(data))) == [
        b"ab\r\n",
        b"cd\r",
        b"ef\n",
        b"\n",
        b"gh\r\n",
        b"\r",
        b"ij",
    ]


def test_jsonl_counts_and_locates_malformed_lines(tmp_path):
    path = tmp_path / "reviews.json"
    path.write_text('{"a": 1}\nnot json\n\n[1, 2]\n{"a": 2}\n', encoding="utf-8")
    report = ReadReport()
    rows = list(iter_jsonl(path, report, "skip"))
    assert [number for number, _ in rows] == [1, 5]
    assert report.rows == 4 and report.bad_rows == 2
    assert report.bad_row_examples[0].startswith(f"{path}:2: not valid JSON")
    assert report.bad_row_examples[1].startswith(f"{path}:4: expected a JSON object")


def test_jsonl_fail_policy_names_file_and_line(tmp_path):
    path = tmp_path / "reviews.json"
    path.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"{path.name}:2: not valid JSON.*on_bad_row: skip"):
        list(iter_jsonl(path, ReadReport(), "fail"))


def test_examples_are_capped_but_every_bad_row_is_counted(tmp_path):
    path = tmp_path / "reviews.json"
    path.write_text("x\n" * 12, encoding="utf-8")
    report = ReadReport()
    assert list(iter_jsonl(path, report, "skip")) == []
    assert report.bad_rows == 12 and len(report.bad_row_examples) == reading.MAX_EXAMPLES


def test_undecodable_bytes_are_replaced_and_counted(tmp_path):
    path = tmp_path / "reviews.json"
    path.write_bytes(b'{"text": "caf\xe9 \xff ok"}\n{"text": "fine \xc3\xa9"}\n')
    report = ReadReport()
    rows = [record for _, record in iter_jsonl(path, report, "skip")]
    assert rows == [{"text": "caf\ufffd \ufffd ok"}, {"text": "fine é"}]
    assert report.undecodable_lines == 1 and report.replaced_characters == 2


def test_python_literal_lines_only_when_asked(tmp_path):
    path = tmp_path / "meta.json"
    path.write_text(
        "{'asin': 'B1', 'categories': [['A', 'B']]}\n{'asin': __import__('os')}\n", encoding="utf-8"
    )
    strict = ReadReport()
    assert list(iter_jsonl(path, strict, "skip")) == []
    lenient = ReadReport()
    assert [r for _, r in iter_jsonl(path, lenient, "skip", python_literals=True)] == [
        {"asin": "B1", "categories": [["A", "B"]]}
    ]
    assert lenient.bad_rows == 1  # a call is not a literal: never evaluated


def test_csv_with_carriage_returns_quoted_newlines_gzip_and_bad_rows(tmp_path):
    text = 'user,item,text\r"u1",i1,"first line\rsecond line"\ru2,i2,plain\ru3,i3,too,many\r\ru4,i4,last'
    path = tmp_path / "reviews.csv.gz"
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    report = ReadReport()
    rows = list(iter_csv(path, report, "skip", ["user", "item", "text"]))
    assert [(line, row["user"], row["text"]) for line, row in rows] == [
        (2, "u1", "first line\rsecond line"),
        (4, "u2", "plain"),
        (7, "u4", "last"),
    ]
    assert report.bad_rows == 1 and report.bad_row_examples[0].startswith(
        f"{path}:5: 4 fields where the header has 3"
    )


def test_tsv_is_split_on_tabs(tmp_path):
    path = tmp_path / "reviews.tsv.gz"
    path.write_bytes(gzip.compress(b"user\titem\ttext\nu1\ti1\tgood, cheap, quick\n"))
    rows = list(iter_csv(path, ReadReport(), "skip", ["user", "item", "text"]))
    assert [row for _, row in rows] == [{"user": "u1", "item": "i1", "text": "good, cheap, quick"}]


def test_csv_missing_column_names_it_and_the_header(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("Reviewer,Review\nA,B\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        list(iter_csv(path, ReadReport(), "skip", ["Reviewer", "Restaurant"]))
    assert (
        "'Restaurant'" in str(caught.value)
        and str(path) in str(caught.value)
        and "Reviewer, Review" in str(caught.value)
    )


def test_truncated_gzip_is_a_data_error_naming_the_file(tmp_path):
    path = tmp_path / "reviews.json.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n' * 1000)[:-20])
    with pytest.raises(DataError, match=rf"{path.name}: cannot read the file"):
        list(iter_jsonl(path, ReadReport(), "skip"))


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        list(iter_jsonl(tmp_path / "nope.json", ReadReport(), "skip"))


def test_split_categories_accepts_lists_strings_and_nested_paths():
    assert split_categories("Pizza, Restaurants, , Italian") == ("Pizza", "Restaurants", "Italian")
    assert split_categories(["Bars", " Nightlife "]) == ("Bars", "Nightlife")
    assert split_categories([["Musical Instruments", "Cables"], ["Musical Instruments"]]) == (
        "Musical Instruments",
        "Cables",
    )
    assert split_categories(None) == ()


def test_sentences_and_the_token_window():
    text = 'Great soup! Try the "best" pie." Then go.\nA new line starts here... ok?! yes'
    assert list(sentences(text)) == [
        "Great soup!",
        'Try the "best" pie."',
        "Then go.",
        "A new line starts here...",
        "ok?!",
        "yes",
    ]
    review = (
        "Too short. "
        + " ".join(["long"] * 25)
        + ". One two three four five. Six seven eight nine ten eleven."
    )
    assert qualifying_sentences(review, 5, 20, 5) == [
        "One two three four five.",
        "Six seven eight nine ten eleven.",
    ]
    assert qualifying_sentences(review, 5, 20, 1) == ["One two three four five."]


def test_render_drops_optional_parts_with_empty_fields_and_keeps_braces_in_values():
    template = "{name}[ in {city}][, {country}][ is known for {main_category}.]{snippets}"
    assert (
        render(template, {"name": "A {b}", "city": "", "country": "US", "snippets": " s."})
        == "A {b}, US s."
    )
    assert (
        render(template, {"name": "X", "city": "Boston", "country": None, "main_category": "food"})
        == "X in Boston is known for food."
    )


def test_json_report_round_trips(tmp_path):
    report = ReadReport()
    report.missing(["text", "user"])
    assert json.loads(json.dumps(report.as_dict()))["missing_fields"] == {"text": 1, "user": 1}
