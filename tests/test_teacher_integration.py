"""The embedded SmolLM2 teacher end to end: a few tuning steps on real seeds, then generation."""

from __future__ import annotations

import json

import pytest
from conftest import REPO_ROOT, embedded_or_skip

from mint_distill.io import read_jsonl
from mint_distill.pipeline import all_stages, run_pipeline
from mint_distill.recipe import load_recipe

pytestmark = pytest.mark.integration

SEED_FILE = REPO_ROOT / "recipes" / "seeds" / "poi.jsonl"


def test_smollm2_tunes_and_generates(tmp_path):
    from peft import PeftModel

    from mint_distill.models import resolve_model
    from mint_distill.models.loading import load_language_model

    teacher = embedded_or_skip("smollm2-135m-instruct")
    encoder = embedded_or_skip("all-minilm-l6-v2")
    records = [json.loads(line) for line in SEED_FILE.read_text().splitlines()]
    yelp = [r for r in records if r["source"] == "yelp_boston_tips"]
    train = [r for r in yelp if r["split"] == "train"][:4]
    dev = [r for r in yelp if r["split"] == "dev"][:2]
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps(r) + "\n" for r in train + dev[:1]))
    data = tmp_path / "runs" / "smol" / "data"
    data.mkdir(parents=True)
    (data / "users.jsonl").write_text(
        "".join(
            json.dumps({"user_id": r["user_id"], "split": "dev", "items": r["items"][:5]}) + "\n"
            for r in dev
        )
    )
    items = {i["item_id"]: i for r in train + dev for i in r["items"]}
    (data / "items.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "item_id": k,
                    "name": i["name"],
                    "city": i["city"],
                    "text": f"{i['name']} in {i['city']}. {i['sentence']}",
                }
            )
            + "\n"
            for k, i in items.items()
        )
    )
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(
        json.dumps(
            {
                "name": "smol",
                "run_dir": str(tmp_path / "runs"),
                "data": {"source": {"format": "yelp_academic", "path": str(tmp_path / "unused")}},
                "teacher": {
                    "model": teacher,
                    "prompt": {"num_examples": 0},
                    "tuning": {
                        "seeds": str(seeds),
                        "epochs": 1,
                        "batch_size": 1,
                        "gradient_accumulation": 1,
                        "learning_rate": 1e-3,
                        "max_length": 384,
                        "lora": {"r": 8, "alpha": 16},
                    },
                    "generation": {
                        "max_new_tokens": 40,
                        "min_words": 0,
                        "batch_size": 2,
                        "max_retries": 0,
                    },
                    "report": {"encoder": encoder, "users": 2},
                },
            }
        )
    )
    recipe = load_recipe(recipe_file)
    stages = [s for s in all_stages() if s.name in ("tune-teacher", "generate", "teacher-report")]
    result = run_pipeline(recipe, stages=stages, quiet=True)

    tuned = result.summaries["tune-teacher"]
    assert tuned["steps"] == 4
    assert tuned["dev_loss_after"] < tuned["dev_loss_before"]
    adapter = tmp_path / "runs" / "smol" / "tune-teacher" / "adapter"
    assert resolve_model(teacher).weights_sha256() in (adapter / "README.md").read_text()
    PeftModel.from_pretrained(load_language_model(teacher), str(adapter))  # a standard PEFT folder

    generated = result.summaries["generate"]
    assert generated["requests"] + generated["rejected"] == 2
    accepted = list(read_jsonl(adapter.parents[1] / "generate" / "requests.jsonl"))
    rejected = list(read_jsonl(adapter.parents[1] / "generate" / "rejected.jsonl"))
    assert all(o["request"] for o in accepted)
    assert all(
        "\n" not in o["request"] for o in accepted + rejected
    )  # stopped at the end of the request
    assert len(result.summaries["teacher-report"]["rows"]) == 6  # 3 on the dev seeds, 2 on the users, the output

    # Tuning again gives the same weights; its card's timings must not make generate run again.
    again = run_pipeline(recipe, stages=stages, force=("tune-teacher",), quiet=True)
    assert again.ran == ["tune-teacher"]
