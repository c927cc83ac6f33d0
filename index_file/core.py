"""index_file's pure logic: request parsing, HDF5 header checks and the domain completion marker.

A domain is complete only when its root carries the marker attribute
`contract.HSDS_INDEXED_MARKER`, written last, naming the ETag of the object it
was built from. A domain without the marker (a crash after linking) or with
another ETag (the object was replaced) is rebuilt.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from datacarousel.contract import FileAttr
from datacarousel.errors import BadInput
from datacarousel.hsds_target import Marker
from datacarousel.messages import IndexRequest
from datacarousel.naming import BasicFusionName

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# The superblock sits at 0 or at a user-block boundary (512, 1024, 2048, ... bytes).
SIGNATURE_OFFSETS = (0, 512, 1024, 2048)
HEADER_BYTES = 4096
_UNDEFINED = 0xFFFFFFFFFFFFFFFF


def parse_request(body: str) -> tuple[IndexRequest, BasicFusionName]:
    """The request and its file name; `MalformedMessage` / `BadFileName` for poison messages."""
    request = IndexRequest.from_json(body)
    return request, BasicFusionName.parse(request.key)


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def key_problem(key: str) -> str | None:
    """What makes `key` no plain archive key (None if nothing): a leading '/', an empty, '.' or '..'
    segment, or a control character."""
    if key.startswith("/"):
        return "key starts with '/'"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        return "key holds a control character"
    if any(part in ("", ".", "..") for part in key.split("/")):
        return "key has an empty, '.' or '..' segment"
    return None


def check_source(
    request: IndexRequest,
    name: BasicFusionName,
    *,
    archive_bucket: str,
    archive_prefix: str,
    item: Mapping[str, Any] | None,
) -> None:
    """Refuse (BadInput) a request that does not name the file's archive object.

    An index request makes the object it names the file's canonical source, so it must be in the
    archive bucket, under the archive prefix, a plain key, and, when the files table already has the
    file, exactly the bucket and key its item records.
    """
    uri = s3_uri(request.bucket, request.key)
    if not uri.isprintable():  # the reason travels as a message attribute: control characters escaped
        uri = repr(uri)
    if request.bucket != archive_bucket:
        raise BadInput(f"{uri}: not in the archive bucket {archive_bucket!r}; only archive objects are indexed")
    if not request.key.startswith(archive_prefix):
        raise BadInput(f"{uri}: key is not under the archive prefix {archive_prefix!r}")
    problem = key_problem(request.key)
    if problem is not None:
        raise BadInput(f"{uri}: {problem}")
    if item is None:
        return
    bucket, key = str(item.get(FileAttr.BUCKET) or ""), str(item.get(FileAttr.KEY) or "")
    if (bucket and bucket != request.bucket) or (key and key != request.key):
        raise BadInput(
            f"{uri}: {name.file_name} is recorded at {s3_uri(bucket or archive_bucket, key or '?')}; "
            "an index request must name that object"
        )


def _unpack_address(data: bytes, offset: int, size: int) -> int:
    if size not in (2, 4, 8) or offset + size > len(data):
        raise BadInput(f"HDF5 superblock is cut short (offset size {size})")
    fmt = {2: "<H", 4: "<I", 8: "<Q"}[size]
    return int(struct.unpack_from(fmt, data, offset)[0])


def stored_end_of_file(header: bytes) -> tuple[int, int]:
    """(base address, end-of-file address) from the first bytes of an HDF5 file.

    Raises `BadInput` when no HDF5 signature is found. Superblock layouts (HDF5 file
    format spec, section II.A): versions 0 and 1 hold the base address, free-space
    address, end-of-file address and driver address after 24 (v0) or 28 (v1) bytes;
    versions 2 and 3 hold base, extension and end-of-file addresses from byte 12.
    """
    for position in SIGNATURE_OFFSETS:
        if header[position : position + 8] == HDF5_SIGNATURE:
            break
    else:
        raise BadInput("not an HDF5 file (no HDF5 signature in the first bytes)")
    sb = header[position:]
    if len(sb) < 16:
        raise BadInput("HDF5 superblock is cut short")
    version = sb[8]
    if version in (0, 1):
        offsets_size = sb[13]
        start = 24 if version == 0 else 28
    elif version in (2, 3):
        offsets_size = sb[9]
        start = 12
    else:
        raise BadInput(f"unknown HDF5 superblock version {version}")
    base = _unpack_address(sb, start, offsets_size)
    eof = _unpack_address(sb, start + 2 * offsets_size, offsets_size)
    return base, eof


def check_hdf5(header: bytes, object_size: int) -> None:
    """Refuse (BadInput) what is not HDF5, or an HDF5 file shorter than its superblock says."""
    if object_size == 0:
        raise BadInput("empty object: not an HDF5 file")
    _base, eof = stored_end_of_file(header)
    # libhdf5 stores the end-of-file address counting any user block (checked with h5py 3.16):
    # comparing it alone with the size never refuses a whole file.
    if eof != _UNDEFINED and eof > object_size:
        raise BadInput(f"truncated HDF5 file: the superblock says {eof} bytes, the object has {object_size}")


def domain_is_complete(marker: Marker | None, *, source: str, etag: str) -> bool:
    """A domain is reusable only when its marker names this very object version."""
    return marker is not None and marker.etag == etag and marker.source == source
