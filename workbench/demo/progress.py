"""The demo's progress while the carousel loop runs, computed from what the tables say (pure).

`Stages` times the demo's stages and marks milestones inside the loop; `note_milestones`,
`second_submission_due`, `progress_line` and `render` read a snapshot (the jobs' overview and the
archive files' items) and say what happened, when bob submits, and what the screen shows.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table

from datacarousel.contract import FileAttr, FileState, JobState


@dataclass
class Stages:
    """Wall time per stage (seconds), in the order they ran, plus milestones inside the carousel loop."""

    seconds: dict[str, float] = field(default_factory=dict)
    milestones: dict[str, float] = field(default_factory=dict)  # seconds from the first carousel step
    _t0: float = 0.0

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - began, 3)

    def mark(self, name: str, since: float) -> None:
        if name not in self.milestones:
            self.milestones[name] = round(time.monotonic() - since, 3)


def second_submission_due(data: Mapping[str, Any]) -> bool:
    """bob submits once a file alice wanted is readable: he then finds it staged and shares it."""
    states = Counter(str(f.get(FileAttr.STATE, "")) for f in data["file_items"])
    return bool(states[FileState.RESTORED.value] + states[FileState.INDEXED.value])


def note_milestones(stages: Stages, data: Mapping[str, Any], t0: float) -> None:
    """Mark in `stages` the milestones `data` shows reached (seconds from `t0`, the first carousel step)."""
    files = data["file_items"]
    states = Counter(str(f.get(FileAttr.STATE, "")) for f in files)
    if any(int(f.get(FileAttr.RESTORE_COUNT, 0)) for f in files):
        stages.mark("first restore requested", t0)
    if states[FileState.RESTORED.value] + states[FileState.INDEXED.value]:
        stages.mark("first file readable", t0)
    if states[FileState.INDEXED.value]:
        stages.mark("first file indexed", t0)
    if states[FileState.INDEXED.value] == len(files):
        stages.mark("every file indexed", t0)
    if any(j["files"]["done"] for j in data["jobs"]):
        stages.mark("first result", t0)
    if all(j["files"]["done"] + j["files"]["failed"] == j["file_count"] for j in data["jobs"]):
        stages.mark("every result", t0)
    for job in data["jobs"]:
        if job["state"] != JobState.OPEN.value:
            owner = job["owner"]
            stages.mark(f"{owner}'s job complete", t0)


def progress_line(data: Mapping[str, Any]) -> str:
    """One line of progress, for a log or a pipe (no live screen)."""
    files = data["file_items"]
    states = Counter(str(f.get(FileAttr.STATE, "")) for f in files)
    restores = sum(int(f.get(FileAttr.RESTORE_COUNT, 0)) for f in files)
    w = data["window"]["in_window"]
    cost_so_far = sum(j["cost_so_far"]["total"] for j in data["jobs"])
    parts = [
        f"files {', '.join(f'{k.lower()} {v}' for k, v in sorted(states.items()))}; restores {restores}; "
        f"window {w['files']} files {w['bytes'] / 2**20:.1f} MiB; cost so far ${cost_so_far:.6f}"
    ]
    for job in data["jobs"]:
        f = job["files"]
        parts.append(
            f"{job['owner']} {job['state'].lower()}: done {f['done']}/{job['file_count']}, queued {f['queued']}, "
            f"waiting {f['waiting'] + f['restoring'] + f['readable'] + f['indexed']}"
        )
    return " | ".join(parts)


def render(data: Mapping[str, Any], steps: int, month: str, elapsed: float) -> Group:
    """The live screen: the archive files, the jobs and the window, after `steps` steps and `elapsed` s."""
    files = data["file_items"]
    files_table = Table(title=f"archive files ({month}) — step {steps}, {elapsed:.0f} s", expand=False)
    for column in ("file", "path", "state", "restores", "MiB"):
        files_table.add_column(column)
    for item in files:
        name = str(item.get(FileAttr.FILE_NAME, "?"))
        state = str(item.get(FileAttr.STATE, "?"))
        style = {"ARCHIVED": "dim", "RESTORING": "yellow", "RESTORED": "cyan", "INDEXED": "green"}.get(state, "red")
        files_table.add_row(
            name,
            str(item.get(FileAttr.MISR_PATH, "")),
            f"[{style}]{state}[/{style}]",
            str(item.get(FileAttr.RESTORE_COUNT, 0)),
            f"{int(item.get(FileAttr.SIZE, 0)) / 2**20:.1f}",
        )
    jobs_table = Table(title="jobs")
    for column in ("owner", "job", "state", "waiting", "restoring", "readable", "indexed", "queued", "running",
                   "done", "failed", "cost so far"):  # fmt: skip
        jobs_table.add_column(column)
    for job in data["jobs"]:
        f = job["files"]
        jobs_table.add_row(
            job["owner"], job["job_id"], job["state"],
            *(str(f[k]) for k in ("waiting", "restoring", "readable", "indexed", "queued", "running", "done",
                                  "failed")),
            f"${job['cost_so_far']['total']:.6f}",
        )  # fmt: skip
    w = data["window"]
    window = (
        f"window: {w['in_window']['files']} of {w['window_cap']['files']} files in use "
        f"(restoring {w['restoring']['files']}, staged {w['restored']['files'] + w['indexed']['files']}), "
        f"{w['needed_archived']['files']} needed and still archived; "
        f"restore calls so far {sum(int(f.get(FileAttr.RESTORE_COUNT, 0)) for f in files)} for {len(files)} files"
    )
    return Group(files_table, jobs_table, window)
