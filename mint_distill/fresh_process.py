"""Work in a newly spawned process: measurements that need their own peak memory and no state
left by earlier ones (loaded libraries, kernel caches, threads)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def in_fresh_process(function: Callable[..., T], *args) -> T:
    """`function(*args)` in a spawned process whose logging is set up like this one's."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from .console import logging_like_this_process

    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn, **logging_like_this_process()) as pool:
        return pool.submit(function, *args).result()
