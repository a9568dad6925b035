"""bm25s, imported so that it leaves the GPU to the models.

bm25s imports JAX when it is installed and runs a top-k with it at import time. On a GPU
machine JAX then reserves 75% of the GPU's memory for the rest of the process (its default
preallocation), and the students trained or scored in the same process run out of memory.
BM25 scores live in NumPy arrays, so JAX is kept on the CPU unless its platform was chosen.
"""

from __future__ import annotations

import os


def import_bm25s():
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import bm25s

    return bm25s
