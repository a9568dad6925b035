"""Recipe loading: strict keys, types, extends, env defaults, overrides."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from mint_distill.errors import RecipeError
from mint_distill.recipe import load_recipe

BASE = """
name: base
data:
  source: {format: yelp_academic, path: yelp}
teacher:
  tuning:
    lora: {r: 16, alpha: 32}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_good_recipe_fills_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, "r.yaml", BASE))
    assert recipe.name == "base"
    assert recipe.teacher.tuning.lora.r == 16
    assert recipe.filter.keep_fraction == 0.5


def test_unknown_key_names_path_and_suggests(tmp_path):
    path = write(tmp_path, "r.yaml", BASE.replace("alpha: 32", "alpah: 32"))
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    message = str(caught.value)
    assert "teacher.tuning.lora.alpah" in message
    assert "Did you mean `alpha`?" in message
    assert "dropout" in message  # lists the allowed keys


def test_unknown_top_level_section(tmp_path):
    path = write(tmp_path, "r.yaml", BASE + "filtr: {method: none}\n")
    with pytest.raises(RecipeError, match=r"unknown key `filtr`.*Did you mean `filter`"):
        load_recipe(path)


def test_wrong_type_names_path_expected_and_value(tmp_path):
    path = write(tmp_path, "r.yaml", BASE.replace("r: 16", "r: sixteen"))
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    message = str(caught.value)
    assert "teacher.tuning.lora.r" in message and "integer" in message and "'sixteen'" in message


def test_wrong_enum_lists_allowed_values(tmp_path):
    path = write(tmp_path, "r.yaml", BASE + "filter: {method: likelyhood}\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    assert "filter.method" in str(caught.value) and "'random'" in str(caught.value)


def test_missing_required_key(tmp_path):
    path = write(tmp_path, "r.yaml", "name: x\n")
    with pytest.raises(RecipeError, match=r"`data` is required"):
        load_recipe(path)


def test_overrides_are_type_checked_and_applied(tmp_path):
    path = write(tmp_path, "r.yaml", BASE)
    recipe = load_recipe(path, ["teacher.tuning.lora.r=8", "filter.keep_fraction=0.3", "name=other"])
    assert recipe.teacher.tuning.lora.r == 8
    assert recipe.filter.keep_fraction == 0.3
    assert recipe.name == "other"
    with pytest.raises(RecipeError, match=r"override `teacher.tuning.lora.rr=8`.*Did you mean `r`"):
        load_recipe(path, ["teacher.tuning.lora.rr=8"])
    with pytest.raises(RecipeError, match=r"filter.keep_fraction"):
        load_recipe(path, ["filter.keep_fraction=1.5"])
    with pytest.raises(RecipeError, match=r"must look like key.path=value"):
        load_recipe(path, ["teacher.tuning.lora.r"])
    with pytest.raises(RecipeError, match=r"`filter.keep_fraction` is a plain value"):
        load_recipe(path, ["filter.keep_fraction.x=1"])


@pytest.mark.parametrize(
    "override, key",
    [
        ("teacher.tuning.lora.r=0", "teacher.tuning.lora.r"),
        ("students.biencoder.lora.alpha=0", "students.biencoder.lora.alpha"),
        ("students.biencoder.lora.dropout=1", "students.biencoder.lora.dropout"),
        ("teacher.tuning.lora.target_modules=[]", "teacher.tuning.lora.target_modules"),
        ("seed=-1", "seed"),
        (f"students.biencoder.training.seed={2**32}", "students.biencoder.training.seed"),
        ("teacher.generation.seed=-5", "teacher.generation.seed"),
        ("teacher.generation.min_words=300", "teacher.generation"),  # above max_words (200)
    ],
)
def test_values_that_would_fail_a_later_stage_are_refused_on_load(tmp_path, override, key):
    with pytest.raises(RecipeError, match=f"`{key}`"):
        load_recipe(write(tmp_path, "r.yaml", BASE), [override])


def test_a_bad_value_names_the_override_that_set_it(tmp_path):
    path = write(tmp_path, "r.yaml", BASE + "seed: -2\n")
    with pytest.raises(RecipeError) as raised:
        load_recipe(path, ["teacher.generation.min_words=300", "filter.keep_fraction=0.5"])
    lines = str(raised.value).splitlines()
    seed = lines.index(next(line for line in lines if "`seed`" in line))
    assert "set on the command line" not in lines[seed + 1]  # the file's own value
    words = lines.index(next(line for line in lines if "`teacher.generation`" in line))
    assert lines[words + 1].strip() == "(set on the command line: `teacher.generation.min_words=300`)"


def test_seed_bounds_are_what_the_training_seeding_accepts(tmp_path):
    from accelerate.utils import set_seed

    for seed in (0, 2**32 - 1):
        recipe = load_recipe(write(tmp_path, "r.yaml", BASE), [f"seed={seed}", f"data.selection.seed={seed}"])
        set_seed(recipe.seed)
        set_seed(recipe.data.selection.seed)
    with pytest.raises(ValueError):
        set_seed(2**32)  # the bound moves if numpy's does; the recipe's must then follow


def test_override_into_an_entry_of_a_mapping_key(tmp_path):
    path = write(tmp_path, "r.yaml", BASE + "ablations: {filter-none: [filter.method=none]}\n")
    recipe = load_recipe(path, ["ablations.seed-1=[seed=1]", "data.item_text.main_categories.Bars=Nightlife"])
    assert recipe.ablations == {"filter-none": ["filter.method=none"], "seed-1": ["seed=1"]}
    defaults = load_recipe(path).data.item_text.main_categories
    assert defaults and recipe.data.item_text.main_categories == {**defaults, "Bars": "Nightlife"}
    with pytest.raises(RecipeError, match="`ablations.seed-1` is a list; address an item by index"):
        load_recipe(path, ["ablations.seed-1.x=1"])


def test_override_into_list_item(tmp_path):
    path = write(tmp_path, "r.yaml", BASE + "evaluation:\n  reference: b\n  rankers: [{name: b, kind: bm25}]\n")
    recipe = load_recipe(path, ["evaluation.rankers.0.k1=1.2"])
    assert recipe.evaluation.rankers[0].k1 == 1.2
    with pytest.raises(RecipeError, match="list index below 1"):
        load_recipe(path, ["evaluation.rankers.3.k1=1.2"])


def test_override_into_an_item_of_a_default_list(tmp_path):
    from mint_distill.recipe.sections.evaluation import EvaluationSection

    default = EvaluationSection().rankers
    path = write(tmp_path, "r.yaml", BASE)
    recipe = load_recipe(path, [f"evaluation.rankers.{len(default) - 1}.top_k=7"])
    assert recipe.evaluation.rankers == [*default[:-1], default[-1].model_copy(update={"top_k": 7})]
    with pytest.raises(RecipeError, match=f"list index below {len(default)}"):
        load_recipe(path, [f"evaluation.rankers.{len(default)}.top_k=7"])


def test_extends_merges_mappings_and_replaces_lists(tmp_path):
    write(tmp_path, "base.yaml", BASE.replace("data:\n", "data:\n  selection: {min_liked: 3, category_blocklist: [Bars]}\n"))
    child = write(
        tmp_path,
        "child.yaml",
        """
        extends: base.yaml
        name: child
        data:
          selection: {category_blocklist: [Hotels]}
        """,
    )
    recipe = load_recipe(child)
    assert recipe.name == "child"
    assert recipe.data.selection.min_liked == 3  # inherited
    assert recipe.data.selection.category_blocklist == ["Hotels"]  # replaced
    assert recipe.teacher.tuning.lora.alpha == 32


def test_an_empty_mapping_in_a_child_clears_its_parents(tmp_path):
    write(tmp_path, "base.yaml", BASE + "ablations: {filter-none: [filter.method=none]}\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nname: child\nablations: {}\n")
    assert load_recipe(tmp_path / "base.yaml").ablations == {"filter-none": ["filter.method=none"]}
    assert load_recipe(child).ablations == {}


def test_the_shipped_amazon_recipe_has_no_pointrec_ablations():
    recipes = Path(__file__).resolve().parents[1] / "recipes"
    assert load_recipe(recipes / "pointrec.yaml").ablations
    assert load_recipe(recipes / "amazon_mi.yaml").ablations == {}


def test_a_key_given_twice_and_a_bad_extends_name_the_file_and_line(tmp_path):
    twice = write(tmp_path, "twice.yaml", BASE + "filter: {keep_fraction: 0.3}\nfilter: {batch_size: 4}\n")
    with pytest.raises(RecipeError, match=r"twice.yaml:9: key `filter` is given twice \(first on line 8\)"):
        load_recipe(twice)
    for extends in ("5", "[base.yaml, null]"):
        with pytest.raises(RecipeError, match=r"child.yaml: `extends` must be a recipe file or a list of them"):
            load_recipe(write(tmp_path, "child.yaml", f"extends: {extends}\nname: child\n"))
    with pytest.raises(RecipeError, match=r"absent.yaml \(extended by .*child.yaml\)"):
        load_recipe(write(tmp_path, "child.yaml", "extends: absent.yaml\nname: child\n"))
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(RecipeError, match=r"latin.yaml: not UTF-8 text"):
        load_recipe(latin)


def test_yaml_merge_keys_work_and_a_key_that_is_no_plain_value_is_an_error(tmp_path):
    merged = write(
        tmp_path,
        "merged.yaml",
        BASE
        + "students:\n  biencoder:\n    training: &train {learning_rate: 0.0005, batch_size: 8}\n"
        + "  crossencoder:\n    training:\n      <<: *train\n      batch_size: 4\n",
    )
    training = load_recipe(merged).students.crossencoder.training
    assert (training.learning_rate, training.batch_size) == (0.0005, 4)
    with pytest.raises(RecipeError, match=r"odd.yaml:9: a key must be a plain value"):
        load_recipe(write(tmp_path, "odd.yaml", BASE + "filter:\n  ? [1, 2]\n  : x\n"))


@pytest.mark.parametrize("name", ["''", "..", "a/b", "/tmp/elsewhere"])
def test_a_run_name_is_one_word_so_its_folder_stays_under_run_dir(tmp_path, name):
    with pytest.raises(RecipeError, match="name"):
        load_recipe(write(tmp_path, "r.yaml", BASE), [f"name={name}"])


def test_an_ablation_variant_is_one_word(tmp_path):
    with pytest.raises(RecipeError, match="variant `a/b` must be one word"):
        load_recipe(write(tmp_path, "r.yaml", BASE), ["ablations={a/b: [seed=1]}"])


def test_the_override_usage_example_is_itself_a_valid_override(tmp_path):
    path = write(tmp_path, "r.yaml", BASE)
    with pytest.raises(RecipeError, match="must look like key.path=value") as refused:
        load_recipe(path, ["teacher.tuning.lora.r"])
    example = re.search(r"\(e\.g\. (\S+)\)", str(refused.value)).group(1)
    assert load_recipe(path, [example]).teacher.tuning.lora.r == int(example.partition("=")[2])


def test_a_student_reference_is_one_that_every_run_of_the_recipe_trains(tmp_path):
    path = write(tmp_path, "r.yaml", BASE)
    assert load_recipe(path, ["evaluation.reference=crossencoder-mint"]).evaluation.reference == "crossencoder-mint"
    with pytest.raises(RecipeError, match=r"`crossencoder-mint` is not trained: students.crossencoder.enabled is false\.$"):
        load_recipe(path, ["evaluation.reference=crossencoder-mint", "students.crossencoder.enabled=false"])
    with pytest.raises(RecipeError, match="the ablation runs train no cross-encoder"):
        load_recipe(path, ["evaluation.reference=crossencoder-mint", "ablations={filter-none: [filter.method=none]}"])


def test_a_bundle_is_asked_for_only_where_a_bi_encoder_is_trained(tmp_path):
    path = write(tmp_path, "r.yaml", BASE)
    with pytest.raises(RecipeError, match="package.enabled is true but students.biencoder.enabled is false"):
        load_recipe(path, ["package.enabled=true", "students.biencoder.enabled=false"])
    assert load_recipe(path, ["students.biencoder.enabled=false"]).package.enabled is None


def test_an_unset_variable_names_the_key_that_uses_it(tmp_path, monkeypatch):
    monkeypatch.delenv("MINT_TEST_UNSET", raising=False)
    path = write(tmp_path, "r.yaml", BASE + "package: {bundle_dir: '${MINT_TEST_UNSET}'}\n")
    with pytest.raises(RecipeError, match=r"r.yaml: `package.bundle_dir` uses \$\{MINT_TEST_UNSET\}"):
        load_recipe(path)


def test_extends_cycle_is_an_error(tmp_path):
    write(tmp_path, "a.yaml", "extends: b.yaml\nname: a\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\nname: b\n")
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(tmp_path / "a.yaml")


def test_env_default_and_value(tmp_path, monkeypatch):
    path = write(tmp_path, "r.yaml", BASE + "run_dir: ${MINT_TEST_RUNS:-fallback}\n")
    monkeypatch.delenv("MINT_TEST_RUNS", raising=False)
    assert load_recipe(path).run_dir == "fallback"
    monkeypatch.setenv("MINT_TEST_RUNS", "/tmp/elsewhere")
    assert load_recipe(path).run_dir == "/tmp/elsewhere"
    monkeypatch.setenv("MINT_TEST_RUNS", "")  # empty counts as unset for `:-`, as in a shell
    assert load_recipe(path).run_dir == "fallback"


def test_a_schema_default_data_dir_falls_back_when_its_variable_is_empty(monkeypatch):
    from mint_distill.data.paths import data_dir

    monkeypatch.setenv("MINT_TEST_DATA", "")
    assert data_dir("${MINT_TEST_DATA:-../shared/data}") == Path("../shared/data")
    assert data_dir("${MINT_TEST_DATA}") == Path("")  # no default: the empty value itself
    monkeypatch.delenv("MINT_TEST_DATA")
    with pytest.raises(RecipeError, match=r"data.data_dir uses \$\{MINT_TEST_DATA\}"):
        data_dir("${MINT_TEST_DATA}")


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(write(tmp_path, "bad.yaml", "name: [unclosed\n"))
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "absent.yaml")


@pytest.mark.parametrize("recipe", sorted(Path(__file__).resolve().parents[1].joinpath("recipes").glob("*.yaml")))
def test_shipped_recipes_validate_and_round_trip(recipe):
    from mint_distill.recipe import Recipe

    loaded = load_recipe(recipe)
    assert Recipe.model_validate(loaded.model_dump(mode="json")) == loaded
