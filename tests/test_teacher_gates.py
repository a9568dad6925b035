"""Quality gates on crafted outputs, and the teacher's measures (diversity, round-trip retrievability)."""

from __future__ import annotations

import itertools

import pytest
from conftest import embedded_or_skip

from mint_distill.teacher.gates import GateSettings, check_request, repetition
from mint_distill.teacher.histories import ShownItem
from mint_distill.teacher.metrics import Catalog, distinct_n, duplicate_share
from mint_distill.teacher.prompts import PromptTemplate

ITEMS = (
    ShownItem(
        "Harbor Light Oysters", "Portland", "The oysters come straight from the bay every morning."
    ),
    ShownItem("Drink", "Boston", "Best dark and stormy of your life."),
)
TEMPLATE = PromptTemplate()
PROMPT = TEMPLATE.render(ITEMS)
GOOD = (
    "My wife and I are spending a long weekend in Portland for our anniversary. We love fresh seafood, "
    "especially raw bar places, and we want a cocktail bar with a view for a drink at sunset. One evening "
    "we would like live jazz. Where should we go?"
)


def gate(text: str, **settings) -> list[str]:
    return check_request(
        text,
        prompt_text=PROMPT,
        items=ITEMS,
        scaffold=TEMPLATE.scaffold_phrases(),
        settings=GateSettings(**settings),
    )


def test_a_good_request_passes():
    assert gate(GOOD) == []


def test_a_drink_is_not_the_bar_called_drink():
    assert gate(GOOD + " A good drink matters.") == []
    assert gate(GOOD + " Something like Drink would be great.") == ["names_item"]


def test_an_item_without_a_name_is_caught_by_its_id():
    capo = ShownItem(None, None, "Fits my neck.", item_id="B0002CZSJO")
    prompt = TEMPLATE.render([capo])

    def check(text: str) -> list[str]:
        return check_request(text, prompt_text=prompt, items=[capo], scaffold=(), settings=GateSettings())

    assert check(GOOD) == []
    assert check(GOOD + " Something like B0002CZSJO would do.") == ["names_item"]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("Looking for oysters.", "too_short"),
        (" ".join([GOOD] * 5), "too_long"),
        (GOOD + " " + "we love the bar and the bar and the bar " * 6, "repetition"),
        (GOOD + " The oysters come straight from the bay every morning.", "copies_prompt"),
        (GOOD + " A user likes these recommendations: oysters.", "copies_prompt"),
        (GOOD + " In Response To The Request On Reddit: thanks", "copies_prompt"),
        (GOOD + " We loved harbor light oysters last year.", "names_item"),
    ],
)
def test_crafted_failures(text, reason):
    assert reason in gate(text)


def test_a_text_cut_off_by_the_token_limit_is_unfinished():
    assert gate(GOOD) == []
    assert check_request(
        GOOD, prompt_text=PROMPT, items=ITEMS, scaffold=TEMPLATE.scaffold_phrases(), settings=GateSettings(), finished=False
    ) == ["unfinished"]


def test_every_failure_is_reported():
    text = "Harbor Light Oysters " * 30
    assert gate(text, max_words=50) == ["too_long", "repetition", "names_item"]


def test_thresholds_are_settings():
    assert gate("Looking for oysters.", min_words=2) == []
    borrowed = GOOD + " Fish from the bay, please."  # three words of a review sentence
    assert gate(borrowed) == []
    assert gate(borrowed, copy_span=3) == ["copies_prompt"]
    looped = GOOD + " " + "we love the bar and the bar and the bar " * 6
    assert "repetition" not in gate(looped, max_repetition=1.0, max_words=500)


def test_repetition_counts_repeated_trigrams():
    text = "a b c a b c"
    trigrams = [tuple(text.split()[i : i + 3]) for i in range(4)]
    assert repetition(text) == pytest.approx(1 - len(set(trigrams)) / len(trigrams))
    assert repetition("one two") == 0.0


def test_distinct_2_and_duplicates():
    texts = ["the quiet bar", "the quiet bar", "a loud club tonight", "The quiet  bar!"]
    bigrams = [
        pair for t in texts for pair in itertools.pairwise(t.lower().replace("!", "").split())
    ]
    assert distinct_n(texts, 2) == pytest.approx(len(set(bigrams)) / len(bigrams))
    assert duplicate_share(texts) == pytest.approx(2 / 4)
    assert duplicate_share([]) == 0.0 and distinct_n([], 2) == 0.0


def test_round_trip_finds_the_users_items(tmp_path):
    from mint_distill.models.loading import load_sentence_transformer

    encoder = load_sentence_transformer(embedded_or_skip("all-minilm-l6-v2"), device="cpu")
    catalog_texts = {
        "sushi": "Sushi bar with fresh sashimi and nigiri.",
        "jazz": "Jazz club with live music every night.",
        "vegan": "Vegan cafe with tofu bowls and salads.",
        "museum": "Art museum with modern paintings.",
    }
    items = [{"item_id": key, "name": key.title(), "city": "Portland", "text": text} for key, text in catalog_texts.items()]
    catalog = Catalog(encoder, items, cache_dir=tmp_path, encoder_name="minilm")
    assert list(tmp_path.glob("catalog-*.npy"))
    queries = ["I want raw fish and sashimi tonight", "Where can I hear live jazz?"]
    positives = [["sushi"], ["jazz", "museum", "not-in-catalog"]]
    result = catalog.round_trip(queries, positives, k=1)
    scores = encoder.encode(queries, normalize_embeddings=True) @ catalog.embeddings.T
    ids = list(catalog_texts)
    recalls, reciprocal = [], []
    for row, wanted in enumerate(positives):
        ranks = [
            sorted(range(4), key=lambda j: -scores[row][j]).index(ids.index(i))
            for i in wanted
            if i in ids
        ]
        recalls.append(sum(r < 1 for r in ranks) / len(ranks))
        reciprocal.append(1 / (1 + min(ranks)))
    assert result == {
        "queries": 2,
        "recall@1": pytest.approx(sum(recalls) / 2, abs=1e-4),
        "mrr": pytest.approx(sum(reciprocal) / 2, abs=1e-4),
    }
    assert result["mrr"] == 1.0  # each query's own place ranks first

    class NoEncoding:
        def encode(self, *args, **kwargs):
            raise AssertionError("the cached catalog was encoded again")

    cached = Catalog(NoEncoding(), items, cache_dir=tmp_path, encoder_name="minilm")
    assert (cached.embeddings == catalog.embeddings).all()
    assert catalog.round_trip(["x"], [["nowhere"]], k=1)["queries"] == 0
    assert catalog.resolve({"item_id": "jazz"}) == "jazz"
    assert catalog.resolve({"item_id": "renamed-by-the-data-layer", "name": "JAZZ", "city": "portland"}) == "jazz"
    assert catalog.resolve({"item_id": None, "name": "Jazz", "city": "Boston"}) is None
