"""Model references, the embedded registry, pulling, verifying and loading."""

from .embedded import EMBEDDED, EmbeddedModel
from .resolver import ResolvedModel, resolve_model

__all__ = ["EMBEDDED", "EmbeddedModel", "ResolvedModel", "resolve_model"]
