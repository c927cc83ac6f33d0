"""Read HDF5 datasets straight from their stored bytes: chunk index + byte ranges + zlib (issue #11).

A BasicFusion orbit stores MISR and MODIS arrays as whole-array (or one-per-band)
gzip-1 chunks without shuffle (docs/basicfusion-layout.md section 1). Reading such a
dataset needs exactly what h5py does internally: fetch the chunk's bytes and
inflate them. This package does that from *any* byte source, so the carousel can
read a restored S3 object with one (or a few parallel) ranged GETs per chunk and
decompress in the client, instead of going through HSDS (which handles
whole-array chunks badly) or through h5py on an fsspec file object (many small
GETs).

Three layers:
- the index (`index`: pure metadata, JSON-serialisable, can be stored at index time):
  `DatasetIndex` per dataset, built from an open h5py file by `index_dataset`
  / `index_datasets`, and `radiance_job_paths` lists what the radiance job reads;
- byte sources (`sources`: "range readers", `(offset, size) -> bytes`): `file_range_reader`,
  `s3_range_reader` (boto3 GetObject with Range), `fsspec_range_reader`;
- decoding: `read_dataset` (one array), `read_datasets` (many, ranges coalesced,
  decoded in a thread pool: zlib releases the GIL) in `read`, and `stream_chunk` in `decode`
  (inflate a whole-array chunk piece by piece, hand out the bytes wanted as soon as they are
  inflated, then inflate the rest into a small dropped buffer to check the zlib
  checksum, with the next compressed pieces fetched in parallel while the current
  one inflates: `readahead`).
On top of them, `direct.DirectReads` (one file's cached index and byte source) and
`prefetch.Prefetcher` (many datasets fetched ahead in few requests). `restart`: a large whole-array
chunk's restart points, built once, let its segments inflate side by side on every thread (with the
same checks).

Integrity: every deflate chunk read is inflated to its end, so its zlib checksum
(adler32 of the uncompressed bytes) and its size are checked, as h5py does; a
chunk that fails raises `CorruptChunk`, a `datacarousel.errors.CorruptData` naming
the dataset, the chunk's byte offset and the reason. Data stored without a filter
(contiguous datasets) carries no checksum in HDF5: only its size is checked.

Only what decodes exactly like HDF5 is taken: contiguous data, or chunks whose
filter pipeline is empty or deflate alone, fixed-size numeric/bytes types, every
chunk allocated and no chunk with a filter skipped. Anything else (shuffle,
fletcher32, szip, scale-offset, partial chunk sets, variable-length types) has
`DatasetIndex.direct == False`; `read_dataset` then raises `NotDirect` and the
caller falls back to h5py (`read_or_fallback` does that for an open dataset).
"""

from __future__ import annotations

from datacarousel.chunkread.decode import (
    DEFAULT_OUT_PIECE,
    DEFAULT_PIECE_SIZE,
    IN_PIECE,
    OUT_PIECE,
    VERIFY_PIECE,
    decode_chunk,
    inflate_into,
    stream_chunk,
)
from datacarousel.chunkread.direct import DirectReads, s3_uri_opener
from datacarousel.chunkread.errors import CorruptChunk, NotDirect, ShortRead
from datacarousel.chunkread.index import (
    CERES_INSTRUMENT_DATASETS,
    CHUNKED,
    CONTIGUOUS,
    FILTER_DEFLATE,
    INDEX_VERSION,
    MISR_BANDS,
    MODIS_GRANULE_DATASETS,
    OTHER,
    Chunk,
    DatasetIndex,
    chunk_grid,
    dumps_index,
    index_dataset,
    index_datasets,
    index_from_hsds,
    loads_index,
    radiance_job_paths,
)
from datacarousel.chunkread.prefetch import Prefetcher
from datacarousel.chunkread.read import (
    find_corrupt_chunk,
    iter_leading_range,
    plan_requests,
    read_dataset,
    read_datasets,
    read_leading_range,
    read_or_fallback,
)
from datacarousel.chunkread.readahead import read_ahead
from datacarousel.chunkread.sources import (
    DEFAULT_COALESCE_GAP,
    DEFAULT_PART_SIZE,
    RangeReader,
    RangeStreamer,
    Stats,
    counted,
    counted_streamer,
    file_range_reader,
    fsspec_range_reader,
    piecewise,
    read_range,
    s3_range_reader,
    s3_range_streamer,
)

__all__ = [
    "CERES_INSTRUMENT_DATASETS",
    "CHUNKED",
    "CONTIGUOUS",
    "DEFAULT_COALESCE_GAP",
    "DEFAULT_OUT_PIECE",
    "DEFAULT_PART_SIZE",
    "DEFAULT_PIECE_SIZE",
    "FILTER_DEFLATE",
    "INDEX_VERSION",
    "IN_PIECE",
    "MISR_BANDS",
    "MODIS_GRANULE_DATASETS",
    "OTHER",
    "OUT_PIECE",
    "VERIFY_PIECE",
    "Chunk",
    "CorruptChunk",
    "DatasetIndex",
    "DirectReads",
    "NotDirect",
    "Prefetcher",
    "RangeReader",
    "RangeStreamer",
    "ShortRead",
    "Stats",
    "chunk_grid",
    "counted",
    "counted_streamer",
    "decode_chunk",
    "dumps_index",
    "file_range_reader",
    "find_corrupt_chunk",
    "fsspec_range_reader",
    "index_dataset",
    "index_datasets",
    "index_from_hsds",
    "inflate_into",
    "iter_leading_range",
    "loads_index",
    "piecewise",
    "plan_requests",
    "radiance_job_paths",
    "read_ahead",
    "read_dataset",
    "read_datasets",
    "read_leading_range",
    "read_or_fallback",
    "read_range",
    "s3_range_reader",
    "s3_range_streamer",
    "s3_uri_opener",
    "stream_chunk",
]
