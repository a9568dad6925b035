"""The Mint filter: keep the items that best explain each synthetic request (query likelihood, or a bi-encoder's similarity)."""

from .keep import Decision, KeepRule
from .pairs import filter_requests, pair_texts
from .records import CatalogItem, SyntheticRequest, read_items, read_requests

__all__ = [
    "CatalogItem", "Decision", "KeepRule", "SyntheticRequest", "filter_requests", "pair_texts", "read_items",
    "read_requests",
]
