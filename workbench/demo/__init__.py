"""`datacarousel demo`: a researcher's month on the embedded default, end to end, in one command.

1. Brings up the embedded environment (moto's server + a real HSDS server + the stack created in
   moto's CloudFormation) in its own state directory, or reuses one already running there.
2. Generates a month of synthetic orbits for a few MISR paths and uploads them to the archive
   bucket as DEEP_ARCHIVE, with a restore delay set through moto's state manager.
3. Inventories the archive, submits two overlapping jobs of one job definition (alice and bob;
   ComputeRadiance unless `--definition` names another, with its parameters checked against the
   definition's description), and runs the carousel step in a loop with a small window, showing
   live progress: restores in windows, indexing, metadata, work released file by file, the
   definition's reducer, completion. The step starts the workers (index_file, record_metadata, the
   definition's own) as local processes through the LocalLauncher (or in their images with
   `--containers`).
4. Ends with a summary read back from the resources (tables, results bucket): per job files done /
   failed and where the results are, restore calls against files, time per stage, the cost of the
   same run on AWS at the archive's real file sizes, and what the jobs produced for their
   definition (`SUMMARISERS`): for ComputeRadiance quick-look PNGs of the monthly composite; for any
   other the result objects and the reducer's outputs (for RegionExtract with samples per instrument).
5. Takes everything down (the services and every job the launcher started), also when interrupted.

Rooms: `plan` (the options and the pure planning: what to generate, who submits what),
`progress` (what the screen shows while the carousel runs), `summary` (the facts read back, put
together and shown), `summarisers` (what one definition's jobs produced), `signals` (SIGINT and
SIGTERM as `Interrupted`) and `run` (`Demo`, the orchestrator: it holds the clients, does the I/O
and calls the pure parts). `workbench/commands/demo.py` is the command line. This package's names
are the demo's public face: `from workbench import demo; demo.run(options)`.
"""

from __future__ import annotations

from workbench.demo.plan import (
    DEFAULT_DEFINITION,
    DEFAULT_INTERVAL_S,
    DEFAULT_LEASE_DAYS,
    DEFAULT_MONTH,
    DEFAULT_OUT_DIR,
    DEFAULT_PATHS,
    DEFAULT_PRESET,
    DEFAULT_RESTORE_DELAY_S,
    DEFAULT_STATE_DIR,
    DEFAULT_TIMEOUT_S,
    RADIANCE,
    DemoError,
    DemoOptions,
    Researcher,
    carousel_environment,
    choose_orbits,
    researchers,
)
from workbench.demo.progress import Stages
from workbench.demo.run import Demo, configure_logging, run, set_restore_delay
from workbench.demo.signals import Interrupted, stop_signals
from workbench.demo.summarisers import (
    GENERIC,
    INSTRUMENTS,
    SUMMARISERS,
    Summariser,
    collect_generic,
    collect_radiance,
    collect_region,
    show_generic,
    show_radiance,
    show_region,
    summariser,
)
from workbench.demo.summary import JobInfo, JobOutput, is_result_key, real_cost

__all__ = [
    "DEFAULT_DEFINITION",
    "DEFAULT_INTERVAL_S",
    "DEFAULT_LEASE_DAYS",
    "DEFAULT_MONTH",
    "DEFAULT_OUT_DIR",
    "DEFAULT_PATHS",
    "DEFAULT_PRESET",
    "DEFAULT_RESTORE_DELAY_S",
    "DEFAULT_STATE_DIR",
    "DEFAULT_TIMEOUT_S",
    "GENERIC",
    "INSTRUMENTS",
    "RADIANCE",
    "SUMMARISERS",
    "Demo",
    "DemoError",
    "DemoOptions",
    "Interrupted",
    "JobInfo",
    "JobOutput",
    "Researcher",
    "Stages",
    "Summariser",
    "carousel_environment",
    "choose_orbits",
    "collect_generic",
    "collect_radiance",
    "collect_region",
    "configure_logging",
    "is_result_key",
    "real_cost",
    "researchers",
    "run",
    "set_restore_delay",
    "show_generic",
    "show_radiance",
    "show_region",
    "stop_signals",
    "summariser",
]
