"""Every image, built for real (podman here, docker where an engine answers), then run.

For each image: its entry point answers `--help`, it runs as the non-root user 10001, its modules
import, its default command is the job definition's command, and nothing of the host or the
embedded environment (credentials, endpoints) is inside. Workers whose package is not in the tree
yet are skipped with that reason.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from batch_jobs.compute_radiance import native
from workbench import images

pytestmark = [pytest.mark.containers, pytest.mark.slow]

ALL_IMAGES = [images.BASE, *images.WORKER_IMAGES]


def _run(engine: images.Engine, ref: str, *command: str) -> tuple[int, str]:
    result = images.run_in_image(ref, list(command), {}, engine=engine, timeout=300)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("spec", images.WORKER_IMAGES, ids=lambda s: s.name)
def test_entry_point_answers_help(
    spec: images.ImageSpec, image_ref: Callable[[images.ImageSpec], str], container_engine: images.Engine
) -> None:
    code, output = _run(container_engine, image_ref(spec), *spec.help_command)
    assert code == 0, output
    assert "usage" in output.lower()


@pytest.mark.parametrize("spec", ALL_IMAGES, ids=lambda s: s.name)
def test_runs_as_the_non_root_user(
    spec: images.ImageSpec, image_ref: Callable[[images.ImageSpec], str], container_engine: images.Engine
) -> None:
    code, output = _run(container_engine, image_ref(spec), "id", "-u")
    assert code == 0, output
    assert int(output.strip()) == images.CONTAINER_UID != 0


@pytest.mark.parametrize("spec", ALL_IMAGES, ids=lambda s: s.name)
def test_modules_import(
    spec: images.ImageSpec, image_ref: Callable[[images.ImageSpec], str], container_engine: images.Engine
) -> None:
    statement = "; ".join(f"import {m}" for m in spec.modules) + "; print('imported')"
    code, output = _run(container_engine, image_ref(spec), "python", "-c", statement)
    assert code == 0, output
    assert output.strip() == "imported"  # and nothing else: no warning either


@pytest.mark.parametrize("spec", ALL_IMAGES, ids=lambda s: s.name)
def test_image_config_has_the_job_command_and_nothing_of_the_host(
    spec: images.ImageSpec, image_ref: Callable[[images.ImageSpec], str], container_engine: images.Engine
) -> None:
    config = images.image_config(container_engine, image_ref(spec))
    assert config["User"] == f"{images.CONTAINER_UID}:{images.CONTAINER_GID}"
    assert not config.get("Entrypoint")
    if spec.command:
        assert config["Cmd"] == list(spec.command)
    names = {entry.partition("=")[0] for entry in config.get("Env", [])}
    assert not {n for n in names if n.startswith(("AWS_", "HS_", "DC_")) or "PASSWORD" in n or "SECRET" in n}


def test_base_has_python_311_and_no_embedded_environment_or_dev_tools(
    image_ref: Callable[[images.ImageSpec], str], container_engine: images.Engine
) -> None:
    ref = image_ref(images.BASE)
    probe = (
        "import importlib.util, sys; "
        "print(sys.version_info[:2] == (3, 11), "
        "[m for m in ('hsds', 'moto', 'pytest', 'troposphere', 'setuptools') if importlib.util.find_spec(m)])"
    )
    code, output = _run(container_engine, ref, "python", "-c", probe)
    assert code == 0, output
    assert output.strip() == "True []"
    code, output = _run(container_engine, ref, "sh", "-c", "command -v hsload")  # index_file's tool
    assert (code, output.strip()) == (0, "/opt/venv/bin/hsload")


def test_root_filesystem_is_read_only_and_tmp_writable(
    image_ref: Callable[[images.ImageSpec], str], container_engine: images.Engine
) -> None:
    ref = image_ref(images.BASE)
    code, output = _run(container_engine, ref, "sh", "-c", "touch /opt/venv/x || echo refused; touch /tmp/x && echo ok")
    assert code == 0, output
    assert "refused" in output
    assert "ok" in output.split()


def test_build_reports_sizes(built_images: dict[str, images.BuildResult]) -> None:
    for result in built_images.values():
        assert result.size_bytes > 50_000_000  # a real image with Python and numpy, not an empty shell


def test_list_shows_each_built_image_once_with_its_size(
    built_images: dict[str, images.BuildResult], container_engine: images.Engine
) -> None:
    tag = next(iter(built_images.values())).ref.rsplit(":", 1)[1]
    rows = images.list_images(container_engine, tag)
    assert sorted((r["name"], r["size_bytes"]) for r in rows) == sorted(
        (b.name, b.size_bytes) for b in built_images.values()
    )


def test_compute_radiance_loads_kernels_compiled_for_it_without_a_compiler(
    image_ref: Callable[[images.ImageSpec], str], container_engine: images.Engine
) -> None:
    """The image compiles the gridding kernels in a stage of its own (never the host's library: the build
    context leaves *.so out) and loads the library of its own source; the compiler stays in that stage."""
    ref = image_ref(images.IMAGES["datacarousel-compute-radiance"])
    probe = "from batch_jobs.compute_radiance import native as n; print(n.KERNELS is not None, n.library_path().name)"
    code, output = _run(container_engine, ref, "python", "-c", probe)
    assert code == 0, output
    assert output.split() == ["True", native.library_path().name]
    code, output = _run(container_engine, ref, "sh", "-c", "command -v cc gcc || echo none")
    assert output.strip() == "none"
