"""A linked domain's restart points, kept in the domain itself (issue #22).

index_file builds the points of a file's large whole-array chunks (`chunkread.restart`) when it links
the file, and stores them with the file's chunk index: as an unlinked uint8 dataset of the domain,
named by the root attribute `contract.HSDS_RESTART_POINTS`. Unlinked, so that the domain's tree stays
the file's; in the domain, so that whoever may read the domain may read its points (no other store,
right or secret), and a domain rebuilt or deleted takes its points with it.

Points only ever speed a read up: a domain without them, or with points that cannot be read, is read
front to back as before (logged).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import h5pyd
import numpy as np

from datacarousel.chunkread import restart
from datacarousel.contract import HSDS_RESTART_POINTS
from datacarousel.hsds import HsdsAccess

log = logging.getLogger(__name__)

Lookup = Callable[[str, int, int], restart.RestartIndex | None]


def save(domain: str, points: bytes, access: HsdsAccess) -> str:
    """Store `points` (`restart.dumps_file` bytes) in `domain`; returns the id of the dataset holding them."""
    with h5pyd.File(domain, "a", **access.h5pyd_kwargs()) as f:
        dataset = f.create_dataset(None, data=np.frombuffer(points, dtype=np.uint8))  # unlinked
        f.attrs[HSDS_RESTART_POINTS] = dataset.id.id
        return str(dataset.id.id)


def recorded(domain: Any) -> bool:
    """Whether an open domain (h5pyd File) records its restart points (possibly of no chunk at all)."""
    return HSDS_RESTART_POINTS in domain.attrs


def load(domain: Any) -> Lookup | None:
    """The points of an open domain (h5pyd File) as a `restart.loads_file` lookup; None when it has none."""
    try:
        if not recorded(domain):
            return None
        dataset_id = domain.attrs[HSDS_RESTART_POINTS]
        dataset_id = dataset_id.decode() if isinstance(dataset_id, bytes) else str(dataset_id)
        data = np.asarray(domain[dataset_id][()], dtype=np.uint8).tobytes()
        return restart.loads_file(data)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        log.warning("%s: restart points not used, inflating front to back: %s", getattr(domain, "filename", ""), exc)
        return None
