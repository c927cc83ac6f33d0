"""`datacarousel.malloc`: one arena for every reader thread, large buffers reused without page faults,
memory handed back between files. Each case runs in a fresh Python (the settings are process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")

THREADS_ALLOCATING = textwrap.dedent(
    """
    import ctypes, sys, threading
    from datacarousel import malloc
    if sys.argv[1] == "tuned":
        assert malloc.tune_for_jobs()
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

BUFFERS_AGAIN_AND_AGAIN = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    from datacarousel import malloc
    if sys.argv[1] == "tuned":
        assert malloc.tune_for_jobs()
    def rss():
        return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmRSS:"))
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    # over 32 MiB, which glibc always maps afresh by default (a MISR band's 1 km radiances, its lat/lon)
    buffers = [np.ones(40 << 20, dtype=np.uint8) for _ in range(3)]
    del buffers
    before = faults()
    buffers = [np.ones(40 << 20, dtype=np.uint8) for _ in range(3)]  # the next band's
    again = faults() - before
    del buffers
    held = rss()
    released = malloc.release_free_memory()
    print(json.dumps({"faults_again": again, "held_mb": held / 1e6, "after_release_mb": rss() / 1e6,
                      "released": released}))
    """
)


def _run(script: str, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, timeout=60, check=True)


def test_reader_threads_share_one_malloc_arena() -> None:
    def arenas(mode: str) -> int:
        return sum(line.startswith("Arena ") for line in _run(THREADS_ALLOCATING, mode).stderr.splitlines())

    assert arenas("default") > 1  # the default the setting changes
    assert arenas("tuned") == 1


def test_large_buffers_are_reused_without_page_faults_and_handed_back_after() -> None:
    default = json.loads(_run(BUFFERS_AGAIN_AND_AGAIN, "default").stdout)
    tuned = json.loads(_run(BUFFERS_AGAIN_AND_AGAIN, "tuned").stdout)
    # (numpy asks for huge pages on large arrays where it can: faults count 4 KiB or 2 MiB pages)
    assert default["faults_again"] > 100, "by default every new large buffer is mapped and faulted in again"
    assert tuned["faults_again"] < default["faults_again"] / 20, "tuned: the freed buffers are reused as they are"
    assert tuned["held_mb"] - tuned["after_release_mb"] > 100, "release_free_memory hands the 126 MB back"
    assert tuned["released"]
