"""Memory a finished stage freed goes back to the system."""

from __future__ import annotations

import psutil
import pytest

from mint_distill.memory import glibc_malloc_trim, release_freed_memory


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 1e6


@pytest.mark.skipif(
    glibc_malloc_trim() is None, reason="returning heap pages is glibc's malloc_trim"
)
def test_freed_heap_pages_are_returned():
    blocks = [bytes(100_000) for _ in range(2_000)]  # below glibc's mmap threshold: heap pages
    pinned = bytes(100_000)  # allocated last, it keeps glibc from trimming the heap's top by itself
    del blocks
    kept = _rss_mb()
    release_freed_memory()
    assert kept - _rss_mb() > 100, "200 MB of freed blocks should leave the process"
    assert len(pinned) == 100_000
