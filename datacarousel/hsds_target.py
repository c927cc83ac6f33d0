"""What the workers that read and write the HSDS index share: where it is (`HsdsTarget`) and what a complete
domain's marker says (`Marker`, the value of `contract.HSDS_INDEXED_MARKER`).

index_file builds domains and writes their marker last; record_metadata walks the same folder and reads
the markers back. Both take these from here, so neither imports the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datacarousel.contract import HSDS_INDEXED_MARKER
from datacarousel.hsds import HsdsAccess


@dataclass(frozen=True)
class HsdsTarget:
    """Where and as whom to index: the HSDS identity (`access`) and the folder of the domains."""

    access: HsdsAccess
    folder: str


@dataclass(frozen=True)
class Marker:
    """What the completion marker records about the indexed object."""

    source: str
    etag: str
    size: int
    datasets: int
    indexed_at: str

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def of(cls, domain: Any) -> Marker | None:
        """The marker an open domain (h5pyd File) carries on its root; None when it has none or it is unreadable."""
        return cls.parse(domain.attrs[HSDS_INDEXED_MARKER]) if HSDS_INDEXED_MARKER in domain.attrs else None

    @classmethod
    def parse(cls, value: Any) -> Marker | None:
        """None when the value is missing or unreadable (the domain is then treated as incomplete)."""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str):
            return None
        try:
            raw = json.loads(value)
        except json.JSONDecodeError:
            return None
        if not isinstance(raw, Mapping):
            return None
        try:
            return cls(
                source=str(raw["source"]),
                etag=str(raw["etag"]),
                size=int(raw["size"]),
                datasets=int(raw["datasets"]),
                indexed_at=str(raw["indexed_at"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
