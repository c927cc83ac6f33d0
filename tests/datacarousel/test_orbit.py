"""`datacarousel.orbit` process settings: one malloc arena for every reader thread."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

THREADS_ALLOCATING = textwrap.dedent(
    """
    import ctypes, sys, threading
    from datacarousel.orbit import share_one_malloc_arena
    if sys.argv[1] == "shared":
        assert share_one_malloc_arena()
    start = threading.Barrier(4)
    def work():
        start.wait()  # all four allocate at once: each would get an arena of its own
        for _ in range(200):
            blocks = [bytearray(64 * 1024) for _ in range(16)]
            del blocks
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    ctypes.CDLL(None).malloc_stats()  # glibc: one "Arena N:" paragraph per arena, on stderr
    """
)


def _arenas(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", THREADS_ALLOCATING, mode], capture_output=True, text=True, timeout=60, check=True
    )
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_reader_threads_share_one_malloc_arena() -> None:
    assert _arenas("default") > 1  # the default the setting changes
    assert _arenas("shared") == 1
