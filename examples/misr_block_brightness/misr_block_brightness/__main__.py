"""Per orbit: each daylit MISR block's mean and maximum radiance (one camera, one band), as CSV rows.
Per job (the reducer): every orbit's rows in one CSV, in time order.

The whole analysis is this file; the Data Carousel's job SDK does the rest (queue, reading the
orbit, writing each result once, failures, the reduce step).
"""

from __future__ import annotations

import sys

import numpy as np

from datacarousel import job

DEFINITION = job.describe(__file__)
HEADER = "orbit,block,time,valid_samples,mean_radiance,max_radiance\n"
FILL = b"0000-00-00"  # BlockCenterTime of a block with no data


def process(work: job.Work) -> job.Result:
    camera, band = work.parameters["camera"], work.parameters["band"]
    rows = [HEADER]
    with work.open_orbit() as orbit:
        times = orbit.misr_block_center_times(camera)
        daylit = [i for i, t in enumerate(times) if not bytes(t).startswith(FILL)]
        if not daylit:
            return job.Result(rows[0].encode(), skipped=("no daylit MISR block",), content_type="text/csv")
        first, last = daylit[0], daylit[-1]  # block indices (0-based) of the daylit range
        blocks = np.concatenate(list(orbit.misr_radiance(camera, band, first, last)))  # groups of blocks
        for block, values in enumerate(blocks, start=first):
            valid = values[np.isfinite(values) & (values >= 0) & (values < 65_000)]
            when = bytes(times[block]).decode().rstrip("\x00")
            stats = f"{valid.mean():.4f},{valid.max():.4f}" if valid.size else ","
            rows.append(f"{work.name.orbit},{block + 1},{when},{valid.size},{stats}\n")
    return job.Result("".join(rows).encode(), content_type="text/csv")


def reduce(reduction: job.Reduction) -> None:
    rows = [line for _, body in reduction.results() for line in body.decode().splitlines()[1:]]
    rows.sort(key=lambda row: row.split(",")[2])  # by block time
    reduction.put("brightness.csv", (HEADER + "".join(f"{row}\n" for row in rows)).encode(), "text/csv")


if __name__ == "__main__":
    sys.exit(job.main(DEFINITION, process, reduce))
