"""The long reliability run: the 1,000-file load and more repetitions of every fault, in an embedded
environment of its own (var/reliability/env), checked in the resources. Rows go to
var/reliability/results.json (source "bench") and the table of docs/reliability.md is re-rendered.

    .venv/bin/python -u bench/bench_reliability.py                       # 1,000 files, 3 repetitions
    .venv/bin/python -u bench/bench_reliability.py --files 100 --repeat 2  # a reduced run
    .venv/bin/python -u bench/bench_reliability.py --only load --files 1000

Scenarios: load (inventory -> restore -> index -> record -> two jobs, two racing steps per round,
several workers of each kind), SIGKILL of index_file and ComputeRadiance workers, throttling of
AWS requests, bad input, HSDS stopped and restarted. Orbit files are generated once into
var/reliability/orbits (tiny preset, fixed seed) and reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as `python bench/bench_reliability.py`, sys.path[0] is bench/ and the test suite is no installed package
# (a wheel ships no tests): the repository root goes first, as `python -m` from the root would put it, and the
# harness is imported by its package path.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.reliability import pipeline_scenarios as scen  # noqa: E402
from tests.reliability.reliability_harness import FaultKit, ScenarioResult, record_scenario, update_doc  # noqa: E402
from tests.reliability.test_reliability_outages import hsds_outage  # noqa: E402
from workbench.local import environment  # noqa: E402

SCENARIOS = ("load", "kill-index", "kill-radiance", "throttle", "bad-input", "hsds")


def merge(rows: list[ScenarioResult]) -> ScenarioResult:
    """Repetitions of one scenario as one row: sums, and the worst time to recover."""
    first = rows[0]
    merged = ScenarioResult(scenario=first.scenario, source="bench", notes=first.notes, extra={"runs": []})
    for r in rows:
        merged.runs += r.runs
        merged.faults += r.faults
        merged.messages_in += r.messages_in
        merged.results_out += r.results_out
        merged.lost += r.lost
        merged.duplicated += r.duplicated
        for what, n in r.duplicates.items():
            merged.duplicates[what] = merged.duplicates.get(what, 0) + n
        merged.dead_lettered += r.dead_lettered
        merged.seconds += r.seconds
        for reason, n in r.reasons.items():
            merged.reasons[reason] = merged.reasons.get(reason, 0) + n
        if r.recover_s is not None:
            merged.recover_s = max(merged.recover_s or 0.0, r.recover_s)
        merged.extra["runs"].append(
            {"seconds": r.seconds, "recover_s": r.recover_s, "notes": r.notes, "duplicates": r.duplicates}
        )
        for key in ("killed_in_flight", "redelivered"):
            if key in r.extra:
                merged.extra[key] = merged.extra.get(key, 0) + r.extra[key]
        for key, value in r.extra.get("writes", {}).items():  # the recorded writes, summed over the runs
            writes = merged.extra.setdefault("writes", {})
            if isinstance(value, int):
                writes[key] = writes.get(key, 0) + value
            elif isinstance(value, dict):
                writes.setdefault(key, {}).update(value)
    if len(rows) > 1 and "writes" in merged.extra:
        merged.notes += f" | all runs: {scen.evidence_note(merged.extra['writes'])}"
    if "killed_in_flight" in merged.extra:
        merged.notes += (
            f" | all runs: {merged.extra['killed_in_flight']} of {merged.faults} kills hit a worker holding a message, "
            f"{merged.extra['redelivered']} of those messages received again by another worker"
        )
    if len(rows) > 1:
        recovers = sorted(r.recover_s for r in rows if r.recover_s is not None)
        if recovers:
            merged.notes += f" | recover median {recovers[len(recovers) // 2]:.1f} s, worst {recovers[-1]:.1f} s"
    return merged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000, help="files of the load scenario")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each fault scenario")
    parser.add_argument("--only", action="append", choices=SCENARIOS, help="run only these (repeatable)")
    parser.add_argument("--state-dir", type=Path, default=ROOT / "var" / "reliability" / "env")
    parser.add_argument("--max-workers", type=int, default=4, help="workers of each kind at once (load)")
    parser.add_argument("--round-pause", type=float, default=10.0, help="seconds between step rounds (load)")
    parser.add_argument(
        "--load-timeout", type=float, default=None, help="seconds the load may take (default: max(1800, 10 per file))"
    )
    args = parser.parse_args()
    chosen = args.only or list(SCENARIOS)
    work = ROOT / "var" / "reliability" / "work" / time.strftime("%Y%m%dT%H%M%S")
    work.mkdir(parents=True, exist_ok=True)
    orbits_dir = ROOT / "var" / "reliability"  # make_orbits reuses var/reliability/orbits
    summary: dict[str, dict[str, object]] = {}
    with environment.running(args.state_dir) as env_obj:
        env = dict(env_obj.env)

        def run(name: str, rows: list[ScenarioResult]) -> None:
            row = merge(rows)
            record_scenario(row)
            update_doc()
            summary[name] = {
                "runs": row.runs,
                "faults": row.faults,
                "in": row.messages_in,
                "out": row.results_out,
                "lost": row.lost,
                "duplicated": row.duplicated,
                "duplicates": row.duplicates,
                "dead_lettered": row.dead_lettered,
                "recover_s": row.recover_s,
                "seconds": round(row.seconds, 1),
            }
            print(json.dumps({name: summary[name], "notes": row.notes}), flush=True)

        if "load" in chosen:
            kit = FaultKit(work / "load-kit")
            r = scen.load_pipeline(
                env,
                orbits_dir,
                kit,
                files=args.files,
                first_orbit=40000,
                max_workers=args.max_workers,
                timeout=args.load_timeout or max(1800.0, args.files * 10.0),
                round_pause_s=args.round_pause,
                scenario=f"load {args.files} files",
                source="bench",
            )
            run("load", [r])
        for name, worker, files, kills, first, seed in (
            ("kill-index", "index_file", 10, 4, 42000, 100),
            ("kill-radiance", "compute_radiance", 6, 3, 42500, 200),
        ):
            if name not in chosen:
                continue
            kit = FaultKit(work / f"{name}-kit")
            rows = [
                scen.kill_workers(
                    env,
                    orbits_dir,
                    kit,
                    worker=worker,
                    files=files,
                    first_orbit=first + 20 * i,
                    kills=kills,
                    seed=seed + i,
                    source="bench",
                )
                for i in range(args.repeat)
            ]
            run(name, rows)
        if "throttle" in chosen:
            rows = [
                scen.throttled_pipeline(
                    env,
                    work / f"throttle-{i}",
                    rate=0.2,
                    files=4,
                    first_orbit=43000 + 20 * i,
                    seed=300 + i,
                    source="bench",
                )
                for i in range(args.repeat)
            ]
            run("throttle", rows)
        if "bad-input" in chosen:
            kit = FaultKit(work / "bad-kit")
            rows = [
                scen.bad_input(env, work / f"bad-{i}", kit, first_orbit=44000 + 100 * i, source="bench")
                for i in range(args.repeat)
            ]
            run("bad-input", rows)
        if "hsds" in chosen:
            rows = []
            for i in range(args.repeat):
                r = hsds_outage(
                    env_obj, work / f"hsds-{i}", files=4, outages=2, seed=400 + i, first_orbit=45000 + 20 * i
                )
                r.source = "bench"
                rows.append(r)
            run("hsds", rows)
    print(json.dumps(summary, indent=2))
    bad = {k: v for k, v in summary.items() if v["lost"] or v["duplicated"]}
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
