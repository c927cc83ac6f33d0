"""Two logging side effects of h5pyd 1.0.0 / h5json 2.0.1, undone for the whole process (see `fix_h5pyd_logging`)."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import h5pyd


class _LibraryChatter(logging.Filter):
    """Drops INFO/DEBUG records that h5pyd and h5json send to the *root* logger (several per dataset)."""

    _DIRS = (f"{os.sep}h5pyd{os.sep}", f"{os.sep}h5json{os.sep}")

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not any(d in record.pathname for d in self._DIRS)


def fix_h5pyd_logging() -> None:
    """Undo two logging side effects of h5pyd 1.0.0 / h5json 2.0.1 (idempotent; done at import of this module).

    1. `h5pyd.File.__init__` sets the *root* logger's level to ERROR, which silences every INFO and
       WARNING line of the whole program (our loggers inherit the root level). The level is restored.
    2. h5pyd and h5json log their own progress at INFO through the root logger and their `h5pyd`
       logger (one line per HTTP request): those records are dropped (their warnings and errors
       still pass; an explicit level set on the `h5pyd` logger is kept). Other loggers are untouched.
    """
    root = logging.getLogger()
    for name in ("h5pyd", "h5json"):  # their named loggers: one INFO line per HTTP request
        library = logging.getLogger(name)
        if library.level == logging.NOTSET:
            library.setLevel(logging.WARNING)
    if not any(isinstance(f, _LibraryChatter) for f in root.filters):
        root.addFilter(_LibraryChatter())
    init = h5pyd.File.__init__
    if getattr(init, "_dc_keeps_root_level", False):
        return

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807 - replaces h5pyd.File.__init__
        level = root.level
        try:
            init(self, *args, **kwargs)
        finally:
            root.setLevel(level)

    __init__._dc_keeps_root_level = True  # type: ignore[attr-defined]
    h5pyd.File.__init__ = __init__
