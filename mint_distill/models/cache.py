"""Where pulled models live: $MINT_DISTILL_HOME/models/<name>/ (default: the user cache dir)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

FILES_RECORD = "mint-files.json"


def home() -> Path:
    configured = os.environ.get("MINT_DISTILL_HOME")
    return Path(configured).expanduser() if configured else Path(platformdirs.user_cache_dir("mint-distill"))


def model_dir(name: str) -> Path:
    return home() / "models" / name


def is_pulled(name: str) -> bool:
    return (model_dir(name) / FILES_RECORD).is_file()
