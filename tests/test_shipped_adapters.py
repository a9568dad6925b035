"""The bundles shipped under adapters/: intact, small, and the POI one reproduces its student's figures.

Each test applies to the bundles present in this checkout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, embedded_or_skip

from mint_distill.adapters.bundle import read_manifest, verify_bundle
from mint_distill.adapters.loading import load_bundle
from mint_distill.export.parity import ranking_parity
from mint_distill.models.precision import autocast, emulated, resolve_precision
from mint_distill.recipe import Recipe

SHIPPED = sorted(path.parent for path in (REPO_ROOT / "adapters").glob("*/manifest.json"))
MAX_BUNDLE_BYTES = 20_000_000


@pytest.mark.parametrize("bundle", SHIPPED, ids=lambda path: path.name)
def test_a_shipped_bundle_is_intact_small_and_carded(bundle: Path):
    assert verify_bundle(bundle) == []
    manifest = read_manifest(bundle)
    assert manifest["domain"] == bundle.name
    assert sum(record["size"] for record in manifest["files"].values()) < MAX_BUNDLE_BYTES
    card = (bundle / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and "mint-distill" in card


def test_the_poi_adapter_reproduces_the_students_pointrec_figures(shared_data):
    bundle = REPO_ROOT / "adapters" / "poi"
    if not (bundle / "manifest.json").is_file():
        pytest.skip("adapters/poi is not shipped in this checkout")
    manifest = read_manifest(bundle)
    embedded_or_skip(manifest["components"]["biencoder"]["base_model"]["reference"].removeprefix("embedded:"))
    recipe = Recipe.model_validate(yaml.safe_load((bundle / "recipe.yaml").read_text(encoding="utf-8")))
    recipe.data.data_dir = str(shared_data)
    encoder = load_bundle(bundle)
    precision = resolve_precision(recipe.evaluation.precision, encoder.device.type)
    if emulated(precision, encoder.device.type):
        pytest.skip("the figures are bfloat16 ones, which this CPU only emulates (tens of times slower)")

    def encode(texts):  # at the precision the student was evaluated in
        with autocast(recipe.evaluation.precision, encoder.device.type):
            return encoder.encode(texts, convert_to_tensor=True).float().cpu().numpy()

    parity = ranking_parity({"bundle": encode}, recipe, reference="bundle")
    trained = manifest["evaluation"]["means"]["biencoder-mint"]["NDCG@5"]
    assert parity.requests == manifest["evaluation"]["requests"]
    assert parity.ndcg5["bundle"] == pytest.approx(trained, abs=1e-3)
