"""Read ahead: an iterator's items produced by a background thread, a bounded number ahead.

So that I/O (the next compressed pieces of a chunk) overlaps the consumer's work (inflating the
current one), or decoding overlaps the consumer's numpy work (`datacarousel.orbit.prefetched`);
closing the consumer stops the producer and closes its source.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def read_ahead(items: Iterator[T], depth: int, *, name: str = "chunkread-ahead") -> Iterator[T]:
    """`items`, produced by a background thread up to `depth` ahead (I/O overlaps the consumer's inflate).

    An exception in the producer is raised in the consumer; closing the consumer stops the producer,
    which then closes `items`. `depth` <= 0: no thread, `items` as they come. `name`: the thread's.
    """
    if depth <= 0:
        yield from items
        return
    slots: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put((0, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put((1, None))
        except BaseException as exc:  # raised in the consumer
            slots.put((2, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == 1:
                return
            if kind == 2:
                raise value
            yield value
    finally:
        stop.set()
        while thread.is_alive():
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(0.05)
