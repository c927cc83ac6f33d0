"""What a direct read raises: not decodable here, too few bytes, or a damaged chunk.

Kept apart from the readers so that every layer (index, byte sources, decoding) raises the same
exceptions, and callers catch them from one place.
"""

from __future__ import annotations

from datacarousel.errors import CorruptData


class NotDirect(Exception):
    """The dataset's storage is not one this module decodes; read it with h5py."""


class ShortRead(OSError):
    """A range reader returned fewer bytes than asked for (truncated file or object)."""


class CorruptChunk(CorruptData):
    """A stored chunk fails its integrity check: the deflate stream is broken, its zlib checksum (adler32)
    does not match, or it does not inflate to exactly the size its shape says.

    A `datacarousel.errors.CorruptData` (so a `BadInput`): `path`, `offset` (the chunk's byte offset
    in the file) and `reason` name what failed.
    """
