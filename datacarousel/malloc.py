"""glibc's allocator set for a job process: one arena, freed memory reused, handed back between files.

A job reads an orbit in waves of large buffers (a MODIS granule's datasets, a MISR band's groups and
segments: 4-20 MB each, gigabytes in all) that are freed and allocated again. By default glibc maps
each large buffer afresh (or trims the heap under it once freed), and the kernel then zeroes and maps
every page of every one on first touch: on a full orbit that was 400 K page faults and 1.3-4.4 s of
system time per file (bench/bench_floor.py). Kept in the heap instead, freed buffers are reused as
they are, and the memory goes back to the system once, after each file (`release_free_memory`), so a
worker that serves file after file holds no more between them than before.

Only glibc has these knobs; elsewhere both functions do nothing and return False.
"""

from __future__ import annotations

import ctypes
from typing import Any

# glibc's mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_KEEP_UP_TO = (1 << 31) - 1  # bytes free at the heap's top kept while a file is read (mallopt takes an int)


def _libc() -> Any:
    return ctypes.CDLL(None)


def tune_for_jobs() -> bool:
    """Call first thing in a job process, before any reader thread exists:
    - one arena for every thread (`M_ARENA_MAX` 1): by default each reader thread gets its own and what it
      frees stays there (full orbit, two threads: peak 0.87-0.89 GB, 0.72-0.77 GB with one arena);
    - large buffers from the heap, never mapped one by one (`M_MMAP_MAX` 0), and freed memory kept in
      the heap for the next ones (`M_TRIM_THRESHOLD` 2 GiB) until `release_free_memory`."""
    try:
        libc = _libc()
        settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _KEEP_UP_TO))
        applied = [bool(libc.mallopt(param, value)) for param, value in settings]  # each one, even after a refusal
        return all(applied)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False


def release_free_memory() -> bool:
    """Hand the heap's free memory back to the system (`malloc_trim(0)`): between files. True if any was."""
    try:
        return bool(_libc().malloc_trim(0))
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False
