"""A link's source opened for reading: an `s3://` object through s3fs, or a file under HSDS's POSIX root.

`hsds.link_file` reads the source's HDF5 metadata here (HSDS later reads the chunks from the same
object). What can go wrong is sorted into the project's errors: a missing object or a file that is
not HDF5 is `BadInput`, an archived object not restored is `NotReadable`, a stalled or failing S3 is
`TransientError` (s3fs's timeouts, `datacarousel.s3files`, make a stalled read fail instead of hanging).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import h5py

from datacarousel.errors import BadInput, NotReadable, TransientError
from datacarousel.s3files import s3_filesystem


def posix_file_uri(path: Path | str, root: Path | str) -> str:
    """`<bucket>/<path>` of a file under the HSDS POSIX root, as HSDS resolves link targets."""
    source = Path(path).resolve()
    base = Path(root).resolve()
    try:
        rel = source.relative_to(base)
    except ValueError:
        raise BadInput(f"{source} is not under the HSDS root directory {base}: HSDS cannot read it") from None
    if len(rel.parts) < 2:
        raise BadInput(f"{source} must sit in a bucket directory under the HSDS root {base}")
    return rel.as_posix()


def _archived(exc: BaseException) -> bool:
    """S3 refuses to read an archived, unrestored object (InvalidObjectState)."""
    text = f"{exc} {exc.__cause__ or ''} {exc.__context__ or ''}"
    return "InvalidObjectState" in text or "not valid for the object's storage class" in text


@contextlib.contextmanager
def open_source(source: str, posix_root: Path | str | None) -> Iterator[tuple[Any, str]]:
    """(h5py.File, file URI for the layouts) of an `s3://` object or a POSIX file under the HSDS root."""
    if source.startswith("s3://"):
        parsed = urlparse(source)
        if not parsed.netloc or not parsed.path.strip("/"):
            raise BadInput(f"{source!r} is not an s3://bucket/key URI")
        fs = s3_filesystem(use_listings_cache=False)
        try:
            raw = fs.open(source, "rb", block_size=1 << 20, cache_type="blockcache")
        except FileNotFoundError as exc:
            raise BadInput(f"{source} does not exist: {exc}") from exc
        except PermissionError as exc:
            if _archived(exc):
                raise NotReadable(f"{source} is archived and not restored: {exc}") from exc
            raise
        except OSError as exc:
            if _archived(exc):
                raise NotReadable(f"{source} is archived and not restored: {exc}") from exc
            raise TransientError(f"cannot open {source}: {exc}") from exc
        try:
            try:
                fin = h5py.File(raw, "r")
            except OSError as exc:
                if _archived(exc):
                    raise NotReadable(f"{source} is archived and not restored: {exc}") from exc
                raise BadInput(f"{source} is not a readable HDF5 file: {exc}") from exc
            try:
                yield fin, source
            finally:
                with contextlib.suppress(Exception):
                    fin.close()
        finally:
            raw.close()
    else:
        if posix_root is None:
            raise BadInput(f"{source!r}: a POSIX source needs the HSDS server's root directory (posix_root)")
        file_uri = posix_file_uri(source, posix_root)
        try:
            fin = h5py.File(source, "r")
        except FileNotFoundError as exc:
            raise BadInput(f"{source} does not exist") from exc
        except OSError as exc:
            raise BadInput(f"{source} is not a readable HDF5 file: {exc}") from exc
        try:
            yield fin, file_uri
        finally:
            with contextlib.suppress(Exception):
                fin.close()
