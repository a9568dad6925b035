"""Recipes: one validated YAML document per run."""

from .loading import apply_override, deep_merge, load_recipe
from .schema import Recipe

__all__ = ["Recipe", "apply_override", "deep_merge", "load_recipe"]
