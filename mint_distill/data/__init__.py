"""Training review histories and the Pointrec test collection.

Library entry points:
- `open_source(spec, data_dir)`: a review source (Yelp, Amazon 2014, any CSV/JSONL table);
- `prepare_training_data(section)` / `write_training_data(section, out_dir)`: Mint's user
  selection, catalog pseudo-histories (`data.catalog`, see `pseudo_histories`) and the data
  stage's files;
- `load_test_collection(spec, data_dir)`: Pointrec requests, qrels, POI texts and pools.

Names are imported on first use, so `mint-distill --help` does not pay for pyarrow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Request": ".pointrec",
    "TestCollection": ".pointrec",
    "load_test_collection": ".pointrec",
    "TrainingData": ".build",
    "prepare_training_data": ".build",
    "write_training_data": ".build",
    "open_source": ".sources",
}
__all__ = [
    "Request",
    "TestCollection",
    "TrainingData",
    "load_test_collection",
    "open_source",
    "prepare_training_data",
    "write_training_data",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
