"""Prompt construction: Mint's layout, per-call shuffling, own-user exclusion, the token budget, chat."""

from __future__ import annotations

import pytest
from fixtures.teacher.tiny_teacher import SEEDS, USERS, tiny_tokenizer

from mint_distill.errors import DataError, RecipeError
from mint_distill.teacher.histories import History, ShownItem, load_seeds, load_users
from mint_distill.teacher.prompts import PromptBuilder, PromptTemplate, load_template, prompt_rng


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def seeds():
    return [s for s in load_seeds(SEEDS) if s.split == "train"]


@pytest.fixture(scope="module")
def user():
    return load_users(USERS)[0]


def test_block_layout_follows_mint(tokenizer, seeds, user):
    builder = PromptBuilder(tokenizer, seeds, num_examples=1)
    prompt = builder.build(user, prompt_rng(0, user.user_id))
    example = next(s for s in seeds if s.seed_id == prompt.example_ids[0])
    names = ", ".join(f"{i.name} in {i.city}" for i in example.history.items)
    reviews = "\n".join(f"- {i.sentence}" for i in example.history.items)
    expected_example = (
        f"A user likes these recommendations: {names}\nThe user wrote these reviews:\n{reviews}\n"
        f"In response to the request on Reddit: {example.request}"
    )
    user_names = ", ".join(f"{i.name} in {i.city}" for i in user.items)
    assert prompt.text.startswith(expected_example + "\n\n")
    assert prompt.text.endswith("In response to the request on Reddit:")
    assert f"A user likes these recommendations: {user_names}\n" in prompt.text
    assert builder.target_text(prompt, "We want oysters.") == " We want oysters."
    assert prompt.num_tokens == len(tokenizer(prompt.text)["input_ids"])


def test_items_without_city_show_the_name_only():
    text = PromptTemplate().render([ShownItem("Capo X", None, "Fits my neck.")])
    assert text.startswith("A user likes these recommendations: Capo X\n")


def test_items_without_a_name_show_their_id(tmp_path):
    users = tmp_path / "users.jsonl"
    users.write_text(
        '{"user_id": "A1", "items": [{"item_id": "B0002CZSJO", "name": null, "sentence": "Fits my neck."},'
        ' {"item_id": "B0018TIADQ", "sentence": "A sturdy case."}]}\n'
    )
    (history,) = load_users(users)
    text = PromptTemplate().render(history.items)
    assert text.startswith("A user likes these recommendations: B0002CZSJO, B0018TIADQ\n")
    assert "- Fits my neck.\n- A sturdy case." in text
    users.write_text('{"user_id": "A1", "items": [{"name": null, "sentence": "Fits my neck."}]}\n')
    with pytest.raises(DataError, match=r"users.jsonl:1: items\[0\] needs a `name` or an `item_id`"):
        load_users(users)


def test_examples_are_shuffled_per_call_and_reproducible(tokenizer, seeds, user):
    builder = PromptBuilder(tokenizer, seeds, num_examples=3, max_tokens=None)
    draws = [
        builder.build(user, prompt_rng(0, user.user_id, attempt)).example_ids
        for attempt in range(30)
    ]
    assert all(len(d) == 3 and len(set(d)) == 3 for d in draws)
    assert len(set(draws)) > 10  # different examples and orders from call to call
    first_positions = {d[0] for d in draws}
    assert (
        len(first_positions) >= 4
    )  # every example can come first: the order is shuffled, not fixed
    again = builder.build(user, prompt_rng(0, user.user_id, 0))
    assert again.example_ids == draws[0]


def test_the_report_samples_prompts_by_the_prompt_seed_and_sampling_by_the_generation_seed(tokenizer, seeds):
    from mint_distill.teacher.gates import GateSettings
    from mint_distill.teacher.generation import Sampled
    from mint_distill.teacher.report import sample_once

    class Recorder:
        def __init__(self):
            self.seeds = []

        def sample(self, texts, seed):
            self.seeds.append(seed)
            return [Sampled("a quiet place please", 4) for _ in texts]

    users = load_users(USERS)
    builder = PromptBuilder(tokenizer, seeds, num_examples=2, max_tokens=None)

    def examples(prompt_seed: int, seed: int, sampler) -> list[tuple[str, ...]]:
        records = sample_once(users, builder=builder, sampler=sampler, gates=GateSettings(), prompt_seed=prompt_seed, seed=seed)
        return [tuple(r["examples"]) for r in records]

    first = examples(0, 0, Recorder())
    assert examples(0, 5, Recorder()) == first  # the generation seed leaves the prompts alone
    assert any(examples(seed, 0, Recorder()) != first for seed in (1, 2, 3))
    recorder = Recorder()
    examples(0, 5, recorder)
    assert recorder.seeds == [5]


def test_a_users_own_seed_is_never_an_example(tokenizer, seeds):
    """Same user id, or half the same places (the data layer may rename ids): never shown."""
    own = seeds[0]
    renamed = History("someone-else", own.history.items)  # same items under another id
    own_names = {i.name for i in own.history.items}
    others = [
        s for s in seeds if 2 * len(own_names & {i.name for i in s.history.items}) < len(own_names)
    ]
    assert (
        0 < len(others) < len(seeds) - 1
    )  # the fixture has a seed sharing 2 of 3 places with seeds[0]
    builder = PromptBuilder(tokenizer, seeds, num_examples=len(seeds))
    for history in (own.history, renamed):
        for attempt in range(10):
            prompt = builder.build(history, prompt_rng(1, attempt))
            assert own.request not in prompt.text
            assert sorted(prompt.example_ids) == sorted(s.seed_id for s in others)


def test_budget_drops_examples_before_the_users_items(tokenizer, seeds, user):
    unlimited = PromptBuilder(tokenizer, seeds, num_examples=3)
    full = unlimited.build(user, prompt_rng(0, "u"))
    user_only = unlimited.count_tokens(PromptTemplate().render(user.items))
    budget = user_only + 5
    assert full.num_tokens > budget
    tight = PromptBuilder(tokenizer, seeds, num_examples=3, max_tokens=budget).build(
        user, prompt_rng(0, "u")
    )
    assert tight.example_ids == ()
    assert tight.items == user.items
    assert tight.num_tokens <= budget

    smaller = PromptBuilder(tokenizer, seeds, num_examples=3, max_tokens=user_only - 5).build(
        user, prompt_rng(0, "u")
    )
    assert smaller.example_ids == ()
    assert 1 <= len(smaller.items) < len(user.items)
    assert smaller.items == user.items[: len(smaller.items)]
    assert smaller.num_tokens <= user_only - 5


def test_chat_variant_wraps_the_prompt_and_ends_the_turn(tokenizer, seeds, user):
    builder = PromptBuilder(tokenizer, seeds, num_examples=1, chat=True)
    prompt = builder.build(user, prompt_rng(0, "chat"))
    assert prompt.text.startswith("<|im_start|>user\n")
    assert prompt.text.endswith(
        "In response to the request on Reddit:<|im_end|>\n<|im_start|>assistant\n"
    )
    target = builder.target_text(prompt, "A quiet cafe please.")
    assert target.startswith("A quiet cafe please.<|im_end|>")
    ids = builder.target_ids(prompt, "A quiet cafe please.")
    assert tokenizer.eos_token_id in ids
    assert not builder.add_special_tokens


def test_plain_target_ends_with_eos(tokenizer, seeds, user):
    builder = PromptBuilder(tokenizer, seeds, num_examples=0)
    prompt = builder.build(user, prompt_rng(0, "x"))
    ids = builder.target_ids(prompt, "A quiet cafe please.")
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids[:-1]) == " A quiet cafe please."


def test_template_file(tmp_path, tokenizer, seeds, user):
    path = tmp_path / "template.yaml"
    path.write_text(
        'block: "Places: {items}\\nNotes:\\n{reviews}\\nTheir post: {request}"\n'
        'review: "* {sentence}"\ninstruction: Write the post this person would write.\n'
    )
    template = load_template(path)
    prompt = PromptBuilder(tokenizer, seeds, template=template, num_examples=1).build(
        user, prompt_rng(0, "t")
    )
    assert prompt.text.startswith("Write the post this person would write.\n\nPlaces: ")
    assert prompt.text.endswith("Their post:")
    assert f"* {user.items[0].sentence}" in prompt.text
    assert template.scaffold_phrases() == ["Write the post this person would write."]


def test_a_request_on_its_own_line_is_written_after_the_prompts_newline(tokenizer, seeds, user):
    template = PromptTemplate(block="Places: {items}\nNotes:\n{reviews}\nTheir post:\n{request}\n")
    builder = PromptBuilder(tokenizer, seeds, template=template, num_examples=1)
    prompt = builder.build(user, prompt_rng(0, "t"))
    assert prompt.text.endswith("Their post:\n")
    # The target starts with the request itself: a stop string "\n" would otherwise end every
    # generated request before its first word.
    assert builder.target_text(prompt, "A quiet cafe please.") == "A quiet cafe please.\n"
    assert prompt.text.count("Their post:\n") == 2  # the example's block too, its request inside


@pytest.mark.parametrize(
    "content, message",
    [
        ("blok: x\n", "unknown key `blok`"),
        ('block: "{items} {reviews}"\n', "must end with {request}"),
        ('block: "{items} {request}"\n', "must contain {reviews}"),
        ("- a list\n", "must be a mapping"),
        ('item: "{name} ({country})"\n', "`item` uses {country}; it may use {city}, {name}"),
        ('block: "{items} {reviews} in {city}: {request}"\n', "`block` uses {city}; it may use {items}, {request}, {reviews}"),
        ('review: "- {sentence"\n', "`review` is not a valid format string"),
    ],
)
def test_bad_template_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(RecipeError, match="teacher.prompt.template") as error:
        load_template(path)
    assert message in str(error.value)


def test_bad_seed_line_names_file_and_line(tmp_path):
    lines = SEEDS.read_text().splitlines()
    broken = tmp_path / "seeds.jsonl"
    broken.write_text(
        "\n".join([lines[0], lines[1].replace('"split": "train"', '"split": "test"')]) + "\n"
    )
    with pytest.raises(DataError, match=r"seeds.jsonl:2: seed `split` must be one of train, dev"):
        load_seeds(broken)
    broken.write_text(lines[0] + "\n{not json\n")
    with pytest.raises(DataError, match=r"seeds.jsonl:2: not valid JSON"):
        load_seeds(broken)
