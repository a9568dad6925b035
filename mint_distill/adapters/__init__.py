"""Domain adapter bundles: write, verify, load, import, find; the `package` stage and `adapt`.

Heavy libraries (torch, peft, sentence-transformers) are imported inside the functions that
need them, so listing and verifying bundles stays fast.
"""

from .archive import import_bundle
from .bundle import (
    BUNDLE_FORMAT,
    FORMAT_VERSION,
    BaseModelMismatchError,
    BundleError,
    ComponentSource,
    check_bundle,
    read_manifest,
    verify_bundle,
    write_bundle,
)
from .installed import BundleInfo, discover_bundles, find_bundle
from .loading import load_adapted_model, load_bundle, load_encoder

__all__ = [
    "BUNDLE_FORMAT",
    "FORMAT_VERSION",
    "BaseModelMismatchError",
    "BundleError",
    "BundleInfo",
    "ComponentSource",
    "check_bundle",
    "discover_bundles",
    "find_bundle",
    "import_bundle",
    "load_adapted_model",
    "load_bundle",
    "load_encoder",
    "read_manifest",
    "verify_bundle",
    "write_bundle",
]
