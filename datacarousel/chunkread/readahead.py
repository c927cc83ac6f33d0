"""Read ahead: an iterator's items produced by a background thread, a bounded number ahead.

So that I/O (the next compressed pieces of a chunk) overlaps the consumer's work (inflating the
current one), or decoding overlaps the consumer's numpy work (`datacarousel.orbit.prefetched`);
closing the consumer stops the producer and closes its source. `map_ahead` is the same with
several producers: items loaded side by side, yielded in order.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


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


def map_ahead(
    fn: Callable[[T], R], items: Iterable[T], workers: int, *, name: str = "map-ahead"
) -> Generator[R, None, None]:
    """`fn(item)` for each item, in order, computed by `workers` threads at most `workers` items ahead.

    Unlike `Executor.map`, which submits every item at once, only `workers` results wait (or are being
    made) while the consumer works on the one it got: memory stays at workers + 1 results. An
    exception of `fn` is raised in the consumer when it reaches that item; closing the consumer cancels
    the items not yet started and waits for the running ones.
    """
    todo = iter(items)
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix=name)
    pending: deque[Future[R]] = deque()
    try:
        for item in todo:
            pending.append(pool.submit(fn, item))
            if len(pending) >= max(1, workers):
                break
        while pending:
            result = pending.popleft().result()
            following = next(todo, _END)
            if following is not _END:
                pending.append(pool.submit(fn, following))  # type: ignore[arg-type]
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_END = object()
