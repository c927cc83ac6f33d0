"""Restart points: one large deflate chunk inflated on several cores at once (issue #22).

A zlib stream inflates front to back only: each block may copy from the 32 KiB inflated before it.
A restart point is a block boundary, with its compressed offset, its uncompressed offset and the 32 KiB
inflated before it (the idea of zlib's `examples/zran.c`). A boundary that falls on a byte boundary (about
one in eight in zlib's output) is preferred: the blocks between two such points are a plain byte range.
Runs of identical blocks (a night of fill values) may have none for hundreds of MB; there a point may fall
inside a byte (its bit offset kept; never where its segment would hold a stored block, which pads to the
stream's own byte boundaries), and its segment's bytes are shifted to start at a byte boundary before they
are inflated. Those blocks then inflate on their own, in any thread: libdeflate
(the fastest inflater, `bench/bench_floor.py`) is given a stored block holding the 32 KiB, the
range's bytes and an empty final block, and returns the 32 KiB followed by the range's output; without
libdeflate, zlib with the 32 KiB as its dictionary does the same.

`build` finds the points in one pass of zlib (through ctypes: Python's zlib does not say where blocks
end), once per chunk, when the file is indexed; `RestartIndex.to_bytes` / `from_bytes` store them
(the windows compressed: a few hundred kB for a 755 MB MISR band). `build_file` does every large
whole-array chunk of a file, and `dumps_file` / `loads_file` keep them in one file beside it
(ORBIT.h5.restart-points, which `datacarousel.orbit.open_local` uses when it is there).

Integrity is the plain inflate's, checked as the segments come: each segment inflates to exactly
its size, each point's stored window equals the 32 KiB the previous segment ended with, the zlib
header is valid, and the Adler-32 of the whole output (per segment, combined in order) equals the
stream's trailer. Any failure raises `CorruptChunk`, so the consumer must exhaust `inflate_segments`
before it trusts what it got, as with `stream_chunk`.

`build` also keeps each segment's own Adler-32, taken from the output whose trailer it checked (they
combine to the trailer: `RestartIndex` refuses them otherwise). With them a reader that needs only part of
the output (the daylit MISR blocks, about 70 % of an orbit's) inflates only the segments that hold it
(`RestartIndex.covering`), each checked against its Adler-32 before it is handed out: no byte is used
unchecked, and the rest of the chunk is neither read nor inflated. Points stored before (format DCRP1)
have no such checks and are inflated whole, as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import logging
import os
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from datacarousel.chunkread.errors import CorruptChunk
from datacarousel.chunkread.index import index_dataset
from datacarousel.chunkread.readahead import map_ahead

log = logging.getLogger(__name__)

RangeRead = Callable[[int, int], bytes]  # (offset in the stream, size) -> those stored bytes

_fast: Any
try:  # libdeflate: about 1.5x zlib's speed, and its own SIMD Adler-32
    import deflate as _fast
except ImportError:  # pragma: no cover - optional speed-up
    _fast = None

WINDOW = 32 * 1024  # deflate's history: what a block may copy from
DEFAULT_SPAN = 16 * 1024 * 1024  # uncompressed bytes between points at least (segments of ~16-20 MiB)
MIN_CHUNK = 32 * 1024 * 1024  # chunks that inflate to less are not worth points (one core inflates them fast)
_ADLER_BASE = 65521
_FORMAT = b"DCRP2"  # with each segment's Adler-32 ("checks")
_FORMAT_V1 = b"DCRP1"  # without: read still, inflated whole
# A stored, non-final block of exactly WINDOW bytes: header bits 000 padded to a byte, LEN, ~LEN.
_STORED_WINDOW_HEADER = bytes([0]) + struct.pack("<HH", WINDOW, 0xFFFF ^ WINDOW)
# An empty final block with fixed codes (BFINAL=1, BTYPE=01, end-of-block 0000000), at a byte boundary.
_EMPTY_FINAL_BLOCK = b"\x03\x00"


@dataclass(frozen=True)
class RestartPoint:
    """A byte-aligned block boundary: where its block starts in the stream and in the output, and the
    WINDOW bytes of output before it."""

    byte_offset: int  # in the zlib stream (the chunk's stored bytes)
    out_offset: int
    window: bytes
    bits: int = 0  # 0: the block starts at byte_offset; else at the top `bits` bits of the byte before it


@dataclass(frozen=True)
class Segment:
    """The blocks between two points: stored bytes [byte_lo, byte_hi), output [out_lo, out_hi)."""

    byte_lo: int
    byte_hi: int
    out_lo: int
    out_hi: int
    window: bytes  # b"" for the first segment
    last: bool  # holds the stream's final block (and is followed by the trailer)
    check: int | None = None  # the Adler-32 of its output, when the index keeps one per segment
    bits_lo: int = 0  # its first block starts at the top bits_lo bits of the byte before byte_lo (0: at byte_lo)
    bits_hi: int = 0  # the next block starts at the top bits_hi bits of the byte before byte_hi

    @property
    def read_lo(self) -> int:
        """The first stored byte that holds any of its bits."""
        return self.byte_lo - 1 if self.bits_lo else self.byte_lo


@dataclass(frozen=True)
class RestartIndex:
    """The restart points of one zlib stream of `stored` bytes that inflates to `size` bytes."""

    stored: int
    size: int
    adler: int  # the stream's trailer
    points: tuple[RestartPoint, ...]
    # The Adler-32 of each segment's output (one more than points), taken from the output whose trailer was
    # checked when the points were built; () in points built before they were kept (read whole only).
    checks: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.checks and len(self.checks) != len(self.points) + 1:
            raise ValueError(f"restart points: {len(self.checks)} checks for {len(self.points) + 1} segments")
        if self.checks and self.adler != combine_checks(self.checks, self.segments()):
            raise ValueError("restart points: the segments' checks do not make the stream's checksum")

    def segments(self) -> list[Segment]:
        """The stream cut at every point: the first starts after the 2-byte zlib header, the last ends
        before the 4-byte trailer."""
        starts = [(2, 0, b"", 0)] + [(p.byte_offset, p.out_offset, p.window, p.bits) for p in self.points]
        ends = [(p.byte_offset, p.out_offset, p.bits) for p in self.points] + [(self.stored - 4, self.size, 0)]
        checks: Sequence[int | None] = self.checks or [None] * len(starts)
        segments = []
        for k, (start, end) in enumerate(zip(starts, ends, strict=True)):
            (byte_lo, out_lo, window, bits_lo), (byte_hi, out_hi, bits_hi) = start, end
            last = k == len(starts) - 1
            segments.append(Segment(byte_lo, byte_hi, out_lo, out_hi, window, last, checks[k], bits_lo, bits_hi))
        return segments

    def covering(self, start: int, end: int) -> list[Segment]:
        """The segments to inflate for output bytes [start, end): only those that hold any of them when each
        can be checked on its own (`checks`), else all (only the whole stream's checksum can check them).
        Raises ValueError for bytes past the end, as `stream_chunk` does."""
        if end > self.size:
            raise ValueError(f"bytes up to {end} wanted of a chunk of {self.size}")
        segments = self.segments()
        if not self.checks:
            return segments
        return [g for g in segments if g.out_hi > start and g.out_lo < end]

    def to_bytes(self) -> bytes:
        head = {"stored": self.stored, "size": self.size, "adler": self.adler,
                "points": [[p.byte_offset, p.out_offset, p.bits] for p in self.points],
                "checks": list(self.checks)}  # fmt: skip
        text = json.dumps(head, separators=(",", ":")).encode()
        body = struct.pack("<I", len(text)) + text + b"".join(p.window for p in self.points)
        return _FORMAT + zlib.compress(body, 6)

    @classmethod
    def from_bytes(cls, data: bytes) -> RestartIndex:
        if not data.startswith((_FORMAT, _FORMAT_V1)):
            raise ValueError("not restart points (bad format marker)")
        body = zlib.decompress(data[len(_FORMAT) :])
        (n,) = struct.unpack_from("<I", body)
        head = json.loads(body[4 : 4 + n])
        windows = body[4 + n :]
        if len(windows) != WINDOW * len(head["points"]):
            raise ValueError("restart points: windows do not match the points")
        points = tuple(
            RestartPoint(int(b), int(o), windows[k * WINDOW : (k + 1) * WINDOW], int(bits[0]) if bits else 0)
            for k, (b, o, *bits) in enumerate(head["points"])
        )
        if any(not 0 <= p.bits <= 7 for p in points):
            raise ValueError("restart points: a bit offset outside 0..7")
        checks = tuple(int(c) for c in head.get("checks", ()))
        return cls(int(head["stored"]), int(head["size"]), int(head["adler"]), points, checks)


# --- building: one pass of zlib with Z_BLOCK --------------------------------------------------
class _ZStream(ctypes.Structure):
    _fields_ = [  # zlib.h's z_stream
        ("next_in", ctypes.c_void_p),
        ("avail_in", ctypes.c_uint),
        ("total_in", ctypes.c_ulong),
        ("next_out", ctypes.c_void_p),
        ("avail_out", ctypes.c_uint),
        ("total_out", ctypes.c_ulong),
        ("msg", ctypes.c_char_p),
        ("state", ctypes.c_void_p),
        ("zalloc", ctypes.c_void_p),
        ("zfree", ctypes.c_void_p),
        ("opaque", ctypes.c_void_p),
        ("data_type", ctypes.c_int),
        ("adler", ctypes.c_ulong),
        ("reserved", ctypes.c_ulong),
    ]


_Z_OK, _Z_STREAM_END, _Z_BUF_ERROR, _Z_BLOCK = 0, 1, -5, 5
_END_OF_BLOCK, _LAST_BLOCK = 128, 64  # data_type bits after inflate(Z_BLOCK)
_OUT_STEP = 1024 * 1024


def _libz() -> Any:
    name = ctypes.util.find_library("z")
    if name is None:  # pragma: no cover - every Python with zlib has it
        raise OSError("libz not found: restart points cannot be built here")
    lib = ctypes.CDLL(name)  # ctypes releases the GIL during each call
    lib.zlibVersion.restype = ctypes.c_char_p
    lib.inflateInit2_.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.inflate.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_int]
    lib.inflateEnd.argtypes = [ctypes.POINTER(_ZStream)]
    return lib


def build(raw: bytes, span: int = DEFAULT_SPAN) -> RestartIndex:
    """The restart points of the zlib stream `raw`, at least `span` output bytes apart. Raises
    `CorruptChunk` if the stream does not inflate to its end."""
    if span < WINDOW:
        raise ValueError(f"restart points must be at least {WINDOW} bytes apart (a window)")
    lib = _libz()
    raw = bytes(raw)  # (no copy of bytes) zlib only reads its input: it points into raw's own buffer
    source = ctypes.c_char_p(raw)
    out = ctypes.create_string_buffer(_OUT_STEP)
    stream = _ZStream()
    if lib.inflateInit2_(ctypes.byref(stream), 15, lib.zlibVersion(), ctypes.sizeof(_ZStream)) != _Z_OK:
        raise MemoryError("zlib inflateInit2 failed")
    stream.next_in, stream.avail_in = ctypes.cast(source, ctypes.c_void_p).value, len(raw)
    points: list[RestartPoint] = []
    checks: list[int] = []
    check = 1  # Adler-32 of the current segment's output so far
    history = bytearray()  # the last WINDOW (or a little more) bytes of output
    produced = last_point = 0
    try:
        while True:
            stream.next_out, stream.avail_out = ctypes.addressof(out), _OUT_STEP
            rc = lib.inflate(ctypes.byref(stream), _Z_BLOCK)
            n = _OUT_STEP - stream.avail_out
            if n:
                piece = ctypes.string_at(out, n)  # (`out.raw` would copy the whole buffer each time)
                check = zlib.adler32(piece, check)
                history += piece
                if len(history) > 4 * WINDOW:
                    del history[:-WINDOW]
                produced += n
            if rc == _Z_STREAM_END:
                break
            if rc not in (_Z_OK, _Z_BUF_ERROR) or (rc == _Z_BUF_ERROR and stream.avail_in == 0):
                reason = stream.msg.decode() if stream.msg else f"zlib error {rc}"
                raise CorruptChunk(f"the stream does not inflate: {reason}")
            if not stream.data_type & _END_OF_BLOCK or stream.data_type & _LAST_BLOCK:
                continue
            byte_offset, bits = len(raw) - stream.avail_in, stream.data_type & 7
            stored_next = _stored_block_at(raw, 8 * byte_offset - bits)
            if stored_next and points and points[-1].bits:
                # A segment moved to a byte boundary cannot hold a stored block (whose padding runs to the stream's
                # own byte boundaries): the point it started at goes, the segment joins the one before.
                dropped = points.pop()
                check = adler32_combine(checks.pop(), check, produced - dropped.out_offset)
                last_point = points[-1].out_offset if points else 0
            # A boundary at a byte boundary when there is one; else (runs of identical blocks, such as a night of
            # fill values, may have none for hundreds of MB) any boundary not before a stored block, once two
            # spans have passed.
            far_enough = produced - last_point >= (span if bits == 0 else 2 * span)
            if far_enough and produced >= WINDOW and (bits == 0 or not stored_next):
                points.append(RestartPoint(byte_offset, produced, bytes(history[-WINDOW:]), bits))
                checks.append(check)
                last_point, check = produced, 1
    finally:
        lib.inflateEnd(ctypes.byref(stream))
    (adler,) = struct.unpack(">I", raw[len(raw) - stream.avail_in - 4 : len(raw) - stream.avail_in])
    return RestartIndex(len(raw) - stream.avail_in, produced, adler, tuple(points), (*checks, check))


def _stored_block_at(raw: bytes, bit: int) -> bool:
    """Whether the deflate block whose header starts at bit `bit` of `raw` (bits counted from each byte's lowest)
    is a stored one (BTYPE 00, after the BFINAL bit)."""
    header = int.from_bytes(raw[bit // 8 : bit // 8 + 2], "little") >> (bit % 8)
    return (header >> 1) & 3 == 0


# --- inflating: segments side by side ----------------------------------------------------------
def adler32_combine(first: int, second: int, second_length: int) -> int:
    """The Adler-32 of A+B from those of A and B and B's length (zlib's adler32_combine)."""
    rem = second_length % _ADLER_BASE
    sum1 = first & 0xFFFF
    sum2 = (rem * sum1) % _ADLER_BASE
    sum1 += (second & 0xFFFF) + _ADLER_BASE - 1
    sum2 += ((first >> 16) & 0xFFFF) + ((second >> 16) & 0xFFFF) + _ADLER_BASE - rem
    sum1 %= _ADLER_BASE
    sum2 %= _ADLER_BASE
    return sum1 | (sum2 << 16)


def combine_checks(checks: Sequence[int], segments: Sequence[Segment]) -> int:
    """The Adler-32 of the whole output from each segment's."""
    adler = 1
    for check, segment in zip(checks, segments, strict=True):
        adler = adler32_combine(adler, check, segment.out_hi - segment.out_lo)
    return adler


def _blocks(data: bytes | memoryview, segment: Segment) -> tuple[bytes | memoryview, ...]:
    """The segment's blocks from its stored bytes, starting at a byte boundary, then an empty final block: the
    pieces to join (once, by the caller, with what goes before them).

    A segment cut where a block ends inside a byte is moved by its bit offset (the first byte's low bits belong
    to the segment before, the last byte's top bits to the one after: both cleared)."""
    if not segment.bits_lo and (segment.last or not segment.bits_hi):
        return (data,) if segment.last else (data, _EMPTY_FINAL_BLOCK)
    a = np.frombuffer(data, dtype=np.uint8)
    drop = 8 - segment.bits_lo if segment.bits_lo else 0
    nbits = 8 * len(a) - drop - (0 if segment.last else segment.bits_hi)
    if nbits < 0:
        raise CorruptChunk(f"segment at stored byte {segment.byte_lo}: shorter than its bit offsets")
    out = np.zeros((nbits + 7) // 8 + 2, dtype=np.uint16)  # room for the final block's 10 bits
    out[: len(a)] = a >> drop
    out[: len(a) - 1] |= a[1:].astype(np.uint16) << (8 - drop)  # (drop = 0: the next byte lands in the top byte)
    out &= 0xFF
    if not segment.last:
        end, shift = divmod(nbits, 8)
        out[end] &= (1 << shift) - 1
        out[end + 1 :] = 0
        out[end] |= (3 << shift) & 0xFF  # BFINAL = 1, BTYPE = 01 (fixed codes), then end-of-block: seven 0 bits
        out[end + 1] |= 3 >> (8 - shift)
        nbits += 10
    return (out[: (nbits + 7) // 8].astype(np.uint8).tobytes(),)


def inflate_segment(data: bytes | memoryview, segment: Segment) -> memoryview:
    """The output of one segment from its stored bytes `data` ([read_lo, byte_hi)). Raises CorruptChunk."""
    want = segment.out_hi - segment.out_lo
    blocks = _blocks(data, segment)
    try:
        if _fast is not None:  # [stored block of the window] + blocks + [empty final block]: window + output
            history = len(segment.window)
            prefix = _STORED_WINDOW_HEADER + segment.window if history else b""
            got = memoryview(_fast.deflate_decompress(b"".join((prefix, *blocks)), history + want))[history:]
        else:
            inflater = zlib.decompressobj(-15, zdict=segment.window) if segment.window else zlib.decompressobj(-15)
            got = memoryview(inflater.decompress(b"".join(blocks), want + 1))
    except (zlib.error, getattr(_fast, "DeflateError", zlib.error)) as exc:
        raise CorruptChunk(f"segment at stored byte {segment.byte_lo} does not inflate: {exc}") from exc
    if len(got) != want:
        raise CorruptChunk(f"segment at stored byte {segment.byte_lo} inflates to {len(got)} bytes, expected {want}")
    return got


def _zlib_header(head: bytes) -> bool:
    """Deflate, a window of at most 32 KiB, no preset dictionary, and the header's own check."""
    return (
        len(head) == 2
        and head[0] & 0x0F == 8
        and head[0] >> 4 <= 7
        and not head[1] & 0x20
        and not ((head[0] << 8) | head[1]) % 31
    )


def adler32(data: memoryview) -> int:
    """The Adler-32 of `data` (libdeflate's vectorized one when installed)."""
    return int(_fast.adler32(data)) if _fast is not None else zlib.adler32(data)


def inflate_segments(
    index: RestartIndex,
    read: RangeRead,
    *,
    workers: int = 2,
    path: str = "",
    chunk_offset: int = 0,
    segments: Sequence[Segment] | None = None,
) -> Iterator[memoryview]:
    """The chunk's output, segment after segment, in order, inflated by `workers` threads (each reads its
    segment's stored bytes with `read(offset in the stream, size)`). Checks everything the plain
    inflate checks (see the module); the last check (Adler-32) fails only after the last segment:
    exhaust the iterator before trusting what it gave.

    `segments` (consecutive, from `index.covering`): only these, each checked against its own Adler-32
    before it is handed out — possible only with an index that keeps them (`checks`)."""

    def corrupt(reason: str) -> CorruptChunk:
        return CorruptChunk(reason, path, chunk_offset)

    def one(segment: Segment) -> tuple[Segment, memoryview, int, bytes]:
        lo = 0 if segment.byte_lo == 2 else segment.read_lo  # the first reads the zlib header too
        hi = segment.byte_hi + 4 if segment.last else segment.byte_hi  # the last, the trailer
        data = read(lo, hi - lo)
        if len(data) != hi - lo:
            raise corrupt(f"{len(data)} of {hi - lo} stored bytes read at {lo}")
        view = memoryview(data)
        head = bytes(view[:2]) if lo == 0 else b""
        trailer = bytes(view[-4:]) if segment.last else b""
        body = view[segment.read_lo - lo : segment.byte_hi - lo]
        try:
            out = inflate_segment(body, segment)
        except CorruptChunk as exc:
            raise corrupt(exc.reason) from exc
        return segment, out, adler32(out), head + trailer

    chosen = index.segments() if segments is None else list(segments)
    whole = bool(chosen) and chosen[0].out_lo == 0 and chosen[-1].last
    if not whole and any(segment.check is None for segment in chosen):
        raise ValueError("only restart points with a checksum per segment can inflate part of a stream")
    adler = 1
    previous: memoryview | None = None
    for segment, out, segment_adler, edges in map_ahead(one, chosen, workers, name="inflate-segment"):
        if segment.out_lo == 0 and not _zlib_header(edges[:2]):
            raise corrupt("not a zlib stream (bad header)")
        if previous is not None and bytes(previous[-WINDOW:]) != segment.window:
            raise corrupt(f"restart point at stored byte {segment.byte_lo} does not follow the output before it")
        if segment.check is not None and segment_adler != segment.check:
            raise corrupt(f"segment at stored byte {segment.byte_lo}: its bytes do not match its checksum (adler32)")
        adler = adler32_combine(adler, segment_adler, len(out))
        if segment.last:
            (stored_adler,) = struct.unpack(">I", edges[-4:])
            if stored_adler != index.adler or (whole and adler != stored_adler):
                raise corrupt("the inflated bytes do not match the stream's checksum (adler32)")
        previous = out
        yield out


# --- a file's points, kept beside it -----------------------------------------------------------
SIDECAR_SUFFIX = ".restart-points"  # ORBIT.h5 -> ORBIT.h5.restart-points
_SIDECAR_FORMAT = b"DCRPS1"


def whole_chunks(h5file: h5py.File, min_size: int = MIN_CHUNK) -> dict[str, tuple[int, int]]:
    """Every dataset the direct reader streams as one deflate chunk (`DatasetIndex.whole_deflate_chunk`) that
    inflates to at least `min_size` bytes: path -> (the chunk's byte offset, its stored size)."""
    found: dict[str, tuple[int, int]] = {}

    def visit(name: str, obj: object) -> None:
        if not isinstance(obj, h5py.Dataset) or obj.chunks is None or obj.size * obj.dtype.itemsize < min_size:
            return
        index = index_dataset(obj, name)
        if index.direct and index.whole_deflate_chunk:
            found[name] = (index.chunks[0].byte_offset, index.chunks[0].size)

    h5file.visititems(visit)
    return found


def build_chunks(
    read: RangeRead, chunks: Mapping[str, tuple[int, int]], *, span: int = DEFAULT_SPAN, workers: int = 2
) -> dict[str, tuple[int, RestartIndex]]:
    """The points of each chunk (path -> (byte offset, stored size), as `whole_chunks` gives them), its bytes
    read with `read(offset, size)`, `workers` chunks at a time. A chunk that does not inflate to its end
    gets none (logged): the reader then inflates it front to back and reports the damage itself."""

    def one(item: tuple[str, tuple[int, int]]) -> tuple[str, tuple[int, RestartIndex] | None]:
        name, (offset, size) = item
        try:
            return name, (offset, build(read(offset, size), span))
        except CorruptChunk as exc:
            log.warning("%s: no restart points: %s", name, exc)
            return name, None

    built = map_ahead(one, sorted(chunks.items()), workers, name="restart-build")
    return {name: points for name, points in built if points is not None}


def build_file(
    path: str | Path, *, min_size: int = MIN_CHUNK, span: int = DEFAULT_SPAN, workers: int = 2
) -> dict[str, tuple[int, RestartIndex]]:
    """The restart points of every large whole-array chunk of a local HDF5 file."""
    with h5py.File(path, "r") as f:
        chunks = whole_chunks(f, min_size)
    with Path(path).open("rb") as file:
        return build_chunks(lambda offset, size: os.pread(file.fileno(), size, offset), chunks, span=span,
                            workers=workers)  # fmt: skip


def dumps_file(points: dict[str, tuple[int, RestartIndex]]) -> bytes:
    """One file's points as bytes: a JSON table of contents, then each chunk's `RestartIndex.to_bytes`."""
    blobs = {name: index.to_bytes() for name, (_, index) in sorted(points.items())}
    table, at = {}, 0
    for name, blob in blobs.items():
        table[name] = [points[name][0], at, len(blob)]
        at += len(blob)
    text = json.dumps(table, separators=(",", ":")).encode()
    return _SIDECAR_FORMAT + struct.pack("<I", len(text)) + text + b"".join(blobs.values())


def loads_file(data: bytes) -> Callable[[str, int, int], RestartIndex | None]:
    """A lookup over `dumps_file` bytes: (dataset path, chunk byte offset, stored size) -> its points, or None
    when the file holds none for that chunk (or holds them for a chunk elsewhere: another file's points,
    or damaged ones: points only ever speed a read up, they never fail one). Raises ValueError for bytes
    that are not such a file at all."""
    try:
        if not data.startswith(_SIDECAR_FORMAT):
            raise ValueError("bad format marker")
        start = len(_SIDECAR_FORMAT)
        (n,) = struct.unpack_from("<I", data, start)
        table = json.loads(data[start + 4 : start + 4 + n])
    except (ValueError, struct.error) as exc:
        raise ValueError(f"not a restart-points file: {exc}") from exc
    base = start + 4 + n

    @functools.cache  # asked once to choose how to read a band, then again to read it
    def lookup(path: str, byte_offset: int, stored: int) -> RestartIndex | None:
        entry = table.get(path.lstrip("/"))
        if entry is None or entry[0] != byte_offset:
            return None
        try:
            index = RestartIndex.from_bytes(data[base + entry[1] : base + entry[1] + entry[2]])
        except (ValueError, KeyError, TypeError, struct.error, zlib.error) as exc:
            log.warning("%s: restart points unreadable, inflated front to back instead: %s", path, exc)
            return None
        return index if index.stored <= stored else None

    return lookup
