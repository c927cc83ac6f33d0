"""SIGINT and SIGTERM during the demo: raised as `Interrupted`, so every `finally` takes things down."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from types import FrameType

log = logging.getLogger(__name__)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: the demo stops and takes everything down."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` in the main thread, so `finally` blocks tear down."""

    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        if received:  # already stopping: a second Ctrl-C must not cut the teardown short
            log.warning("%s again: still taking everything down", signal.Signals(signum).name)
            return
        received.append(signum)
        raise Interrupted(signum)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
