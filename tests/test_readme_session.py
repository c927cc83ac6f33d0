"""The README's researcher session, taken from README.md and run as it stands, in a fresh directory.

A newcomer copies that block into a shell after the set-up (`make bootstrap`, the venv's `bin/` on
the PATH); so does this test: the block after the `<!-- session: ... -->` marker, unchanged, under
`bash -e`, with no project variable inherited. It must bring the embedded environment up, reach
COMPLETE jobs and leave each job's fetched results in `results/JOB/`, then take everything down.
How long it takes is reported, not asserted (timing goals live in `bench/`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- session: tests/test_readme_session.py runs the next block verbatim -->"
SESSION_TIMEOUT_S = 1200  # a stuck session fails instead of hanging the suite; a loaded machine needs the margin


def readme_session(readme: str) -> str:
    """The ```sh block right after the marker, as written."""
    after = readme.split(MARKER, 1)[1]
    match = re.match(r"\s*```sh\n(.*?)```", after, re.DOTALL)
    assert match, "the session marker is not followed by a ```sh block"
    return match.group(1)


def test_the_session_block_is_found_and_is_the_whole_researcher_path() -> None:
    session = readme_session((ROOT / "README.md").read_text())
    commands = [line.split()[1] for line in session.splitlines() if line.startswith("datacarousel ")]
    assert commands[0] == "up" and commands[-1] == "down"
    assert {"generate", "upload", "inventory", "submit", "step", "status", "fetch"} <= set(commands)
    assert "--until-done" in session  # the step ends by itself: the block runs to its end


def _clean_environment(home: Path) -> dict[str, str]:
    """A new shell's variables: none of the project's or AWS's, the venv's bin first on the PATH."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("DC_", "AWS_", "HS_", "PYTEST_"))}
    keep["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{keep.get('PATH', '')}"
    keep["HOME"] = str(home)  # no ~/.aws of the machine's user
    keep["TERM"] = "dumb"
    return keep


@pytest.fixture()
def readme_session_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh working directory; whatever the session started there is stopped afterwards, by PID."""
    work = tmp_path / "session"
    work.mkdir()
    (tmp_path / "home").mkdir()
    yield work
    if (work / "var" / "local").exists():
        subprocess.run(
            [str(Path(sys.executable).parent / "datacarousel"), "down"],
            cwd=work,
            env=_clean_environment(tmp_path / "home"),
            capture_output=True,
            timeout=120,
            check=False,
        )


def test_the_readme_session_runs_verbatim_to_complete_jobs_and_fetched_results(readme_session_dir: Path) -> None:
    session = readme_session((ROOT / "README.md").read_text())
    script = readme_session_dir / "session.sh"
    script.write_text(session)
    began = time.monotonic()
    done = subprocess.run(
        ["bash", "-e", str(script)],
        cwd=readme_session_dir,
        env=_clean_environment(readme_session_dir.parent / "home"),
        capture_output=True,
        text=True,
        timeout=SESSION_TIMEOUT_S,
        check=False,
    )
    seconds = time.monotonic() - began
    print(f"README session: {seconds:.1f} s, exit {done.returncode}")
    assert done.returncode == 0, f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
    assert "Traceback" not in done.stderr

    # Both jobs COMPLETE: status --all prints each job with its state.
    assert len(re.findall(r"\bCOMPLETE\b", done.stdout)) >= 2, done.stdout[-3000:]
    results = readme_session_dir / "results"
    jobs = sorted(p for p in results.iterdir() if p.is_dir())
    assert len(jobs) == 2, f"one results folder per job, got {[p.name for p in jobs]}"
    composites = sorted(results.glob("*/composites/*.npz"))
    orbit_results = sorted(results.glob("*/**/CLIMARBLE_O*.npz"))
    netcdf = sorted(results.glob("*/**/TERRA_BF_L1B_O*.nc"))
    quicklooks = sorted(results.glob("*/**/*.png"))
    assert composites and orbit_results and netcdf and quicklooks, sorted(str(p) for p in results.rglob("*"))
    with np.load(composites[0]) as composite:
        assert int(np.asarray(composite["modis_count"]).sum()) > 0  # gridded samples, not an empty grid
    # `down` stopped what `up` started: the state directory lists no running service.
    assert "stopped" in done.stdout + done.stderr
