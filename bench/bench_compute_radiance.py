"""ComputeRadiance on a full-size orbit, side by side with its read floor, in one run.

    .venv/bin/python bench/bench_compute_radiance.py [--file ORBIT.h5 | --work-dir DIR] [--repeat 3]

- read floor: the time to read with h5py exactly the datasets the job needs (lat/lon of every MODIS
  granule; angles and VIS bands of the descending ones; MISR BlockCenterTime, geometry, geolocation and
  the four AN bands over the daylit block range; CERES FM1 arrays), nothing computed;
- job: `compute_orbit` through the local reader (which streams the whole-array MISR chunks);
- ratio job / floor (goal <= 1.3, stretch 1.15) and the peak memory of each (goal <= 2 GiB, stretch 1.2 GB),
  every measurement in a fresh subprocess (resource.getrusage maxrss), medians over --repeat runs.
Without --file the script writes the SYNTH helper's "full" preset orbit into --work-dir (once).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import h5py

from batch_jobs.compute_radiance import science as s
from batch_jobs.compute_radiance import window as w
from batch_jobs.compute_radiance.job import compute_orbit
from batch_jobs.compute_radiance.result import npz_bytes
from datacarousel.orbit import open_hsds, open_local
from workbench.synthetic.generator import generate_orbit

GIB = 1024**3


def read_floor(path: str) -> dict[str, float]:
    started = time.perf_counter()
    nbytes = 0
    with h5py.File(path, "r") as f:
        descending = []
        for g in f["MODIS"]:
            lat = f[f"MODIS/{g}/_1KM/Geolocation/Latitude"][()]
            lon = f[f"MODIS/{g}/_1KM/Geolocation/Longitude"][()]
            nbytes += lat.nbytes + lon.nbytes
            if w.is_descending(lat):
                descending.append(g)
                for name in ("SolarZenith", "SensorZenith", *(f"_1KM/Data_Fields/{d}" for d in s.MODIS_VIS_FIELDS)):
                    if name in f[f"MODIS/{g}"]:
                        nbytes += f[f"MODIS/{g}/{name}"][()].nbytes
        window = w.time_window(descending)
        if window is not None:
            blocks = w.blocks_in_window(w.parse_block_center_times(f["MISR/AN/BlockCenterTime"][()]), *window)
            if len(blocks):
                sel = slice(int(blocks[0]), int(blocks[-1]) + 1)
                paths = ["MISR/Solar_Geometry/SolarZenith", "MISR/AN/Sensor_Geometry/AnZenith",
                         "MISR/Geolocation/GeoLatitude", "MISR/Geolocation/GeoLongitude",
                         *(f"MISR/AN/Data_Fields/{b}_Radiance" for b in s.MISR_BANDS)]  # fmt: skip
                for p in paths:
                    nbytes += f[p][sel].nbytes
            for g in f["CERES"]:
                if "FM1" in f[f"CERES/{g}"]:
                    for d in ("Time_and_Position/Time_of_observation", "Time_and_Position/Latitude",
                              "Time_and_Position/Longitude", "Radiances/SW_Radiance", "Radiances/LW_Radiance",
                              "Radiances/Radiance_Mode_Flags", "Viewing_Angles/Solar_Zenith",
                              "Viewing_Angles/Viewing_Zenith"):  # fmt: skip
                        nbytes += f[f"CERES/{g}/FM1/{d}"][()].nbytes
    return {"seconds": time.perf_counter() - started, "bytes": nbytes}


def run_job(path: str) -> dict[str, float]:
    started = time.perf_counter()
    with open_local(path) as src:
        result = compute_orbit(src)
    data = npz_bytes(result.arrays())
    return {
        "seconds": time.perf_counter() - started,
        "modis_samples": float(result.modis.count.sum()),
        "misr_samples": float(result.misr.count.sum()),
        "ceres_samples": float(result.ceres.count.sum()),
        "misr_blocks": float(len(result.misr_blocks_used)),
        "result_bytes": float(len(data)),
    }


def run_hsds(domain: str) -> dict[str, float]:
    started = time.perf_counter()
    with open_hsds(domain) as src:
        compute_orbit(src)
    return {"seconds": time.perf_counter() - started}


def _child(kind: str, target: str) -> None:
    out = {"floor": read_floor, "job": run_job, "hsds": run_hsds}[kind](target)
    out["maxrss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0
    print(json.dumps(out))


def measure(kind: str, target: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, target], check=True, capture_output=True, text=True
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", help="an existing full-size orbit file")
    parser.add_argument(
        "--work-dir", default="var/bench", help="where to generate the full orbit if --file is not given"
    )
    parser.add_argument("--orbit", type=int, default=85079)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hsds-domain", help="also time the job through this HSDS domain (HS_* variables set)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    if args.file:
        path = Path(args.file)
    else:
        work = Path(args.work_dir)
        existing = sorted(work.glob(f"TERRA_BF_L1B_O{args.orbit}_*.h5"))
        path = existing[0] if existing else generate_orbit(args.orbit, work, preset="full")
    size = path.stat().st_size
    with path.open("rb") as fh:  # warm the page cache so that both sides read from memory
        while fh.read(64 * 1024 * 1024):
            pass
    floors, jobs, hsds = [], [], []
    for _ in range(args.repeat):  # interleaved, so that machine load hits both alike
        floors.append(measure("floor", str(path)))
        jobs.append(measure("job", str(path)))
        if args.hsds_domain:
            hsds.append(measure("hsds", args.hsds_domain))
    floor_s = statistics.median(m["seconds"] for m in floors)
    job_s = statistics.median(m["seconds"] for m in jobs)
    floor_rss = max(m["maxrss_bytes"] for m in floors)
    job_rss = max(m["maxrss_bytes"] for m in jobs)
    print(f"orbit file: {path} ({size / GIB:.2f} GiB), {args.repeat} runs each, medians")
    print(f"{'':24}{'seconds':>10}{'peak GiB':>10}")
    print(f"{'read floor (h5py)':24}{floor_s:10.2f}{floor_rss / GIB:10.2f}   "
          f"({floors[0]['bytes'] / GIB:.2f} GiB of arrays read)")  # fmt: skip
    print(f"{'ComputeRadiance job':24}{job_s:10.2f}{job_rss / GIB:10.2f}")
    if hsds:
        print(f"{'job through HSDS':24}{statistics.median(m['seconds'] for m in hsds):10.2f}"
              f"{max(m['maxrss_bytes'] for m in hsds) / GIB:10.2f}")  # fmt: skip
    print(f"ratio job / floor: {job_s / floor_s:.2f} (goal <= 1.30, stretch 1.15)")
    print(f"peak memory of the job: {job_rss / GIB:.2f} GiB (goal <= 2 GiB, stretch 1.2 GB = {1.2e9 / GIB:.2f} GiB)")
    detail = {k: v for k, v in jobs[0].items() if k not in ("seconds", "maxrss_bytes")}
    print(f"job output: {json.dumps(detail)}")
    print(f"all runs: floor {[round(m['seconds'], 2) for m in floors]}, job {[round(m['seconds'], 2) for m in jobs]}")


if __name__ == "__main__":
    main()
