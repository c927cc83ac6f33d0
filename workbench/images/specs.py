"""What the images are: one per worker and one per built-in analysis, all FROM one shared base.

`ImageSpec` says an image's Dockerfile, the code packages it copies, its command and the stack
parameter that takes its URI; `IMAGES` lists them (the base, the SDK, the workers); `select` picks
some by name. Nothing here talks to an engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from datacarousel import registry
from datacarousel.contract import HSDS_IMAGE_PARAMETER, JobDefinitionName, WorkerImage
from datacarousel.contract import WORKER_IMAGES as CONTRACT_IMAGES
from datacarousel.definitions import JobDefinition
from workbench.images.engine import ImageError

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ImageSpec:
    """One image: its Dockerfile, the code packages it copies, and the command it runs."""

    name: str
    dockerfile: str  # relative to the repository root
    packages: tuple[str, ...] = ()  # the worker's own package(s): the image is built once they exist
    command: tuple[str, ...] = ()  # the image's CMD: the job definition's command with its defaults
    help_command: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()  # modules an import check of the image loads
    job_definition: str = ""
    template_parameter: str = ""  # the stack parameter that takes this image's URI
    requirements: tuple[str, ...] = ()  # requirement files the image installs (relative to the root)

    @property
    def is_base(self) -> bool:
        return not self.packages

    def context_files(self) -> tuple[str, ...]:
        """What the build context must hold (paths relative to the repository root)."""
        return (*self.requirements, *(dict.fromkeys((KERNEL, *self.packages)) if self.packages else ()))

    def missing_packages(self, root: Path = REPO_ROOT) -> list[str]:
        """Own packages not (yet) in the tree (a directory without Python files does not count)."""
        return [p for p in dict.fromkeys((KERNEL, *self.packages)) if not _is_package(root / p)]


def _is_package(path: Path) -> bool:
    """A directory with Python code in it (regular or namespace package)."""
    return path.is_dir() and any(path.glob("*.py"))


# Every worker image carries the kernel and its own package only: the workers, the carousel and the
# analyses import none of each other (import-linter's layers contract, pyproject.toml).
KERNEL = "datacarousel"
# The carousel reads the built-in analyses' descriptions (batch_jobs/*/definition.toml), not their code.
CAROUSEL_PACKAGES = ("carousel", "batch_jobs")


BASE = ImageSpec(
    name="datacarousel-base",
    dockerfile="docker/base.Dockerfile",
    requirements=("docker/requirements-runtime.txt",),
    modules=("boto3", "botocore", "h5py", "h5pyd", "h5json", "numpy", "s3fs", "requests_unixsocket", "typer"),
)


def _worker(
    definition: JobDefinitionName,
    package: str,
    command: Sequence[str],
    *,
    module: str = "",
    also: tuple[str, ...] = (),
    requirements: tuple[str, ...] = (),
    modules: tuple[str, ...] = (),
) -> ImageSpec:
    """A pipeline worker's image; its name and template parameter come from `contract.WORKER_IMAGES`."""
    (entry,) = [e for e in CONTRACT_IMAGES if e.job_definition == definition.value]
    return _image(
        entry, package, command, module=module or package, also=also, requirements=requirements, modules=modules
    )


def _image(
    entry: WorkerImage,
    package: str,
    command: Sequence[str],
    *,
    module: str,
    also: tuple[str, ...] = (),
    requirements: tuple[str, ...] = (),
    modules: tuple[str, ...] = (),
) -> ImageSpec:
    return ImageSpec(
        name=entry.image,
        dockerfile=f"docker/{entry.image.removeprefix('datacarousel-')}.Dockerfile",
        packages=(package, *also),
        command=tuple(command),
        help_command=("python", "-m", module, "--help"),
        modules=("datacarousel", "datacarousel.contract", package, f"{module}.__main__", *modules),
        job_definition=entry.job_definition,
        template_parameter=entry.parameter,
        requirements=requirements,
    )


# What every built-in analysis's image adds to the base: NetCDF output and quick-look maps.
ANALYSIS_REQUIREMENTS = ("docker/requirements-analyses.txt",)
ANALYSIS_MODULES = ("matplotlib.pyplot", "xarray", "h5netcdf")


def _analysis(described: JobDefinition) -> ImageSpec:
    """A built-in analysis's image, all from its description: name, template parameter, command, module.

    Its command is the job definition's with the Batch parameter defaults filled in.
    """
    defaults = {f"Ref::{key}": value for key, value in described.batch_parameters().items()}
    command = tuple(defaults.get(part, part) for part in described.batch_command())
    module = command[command.index("-m") + 1] if "-m" in command else described.name
    return _image(
        WorkerImage(described.name, described.image, described.image_parameter),
        module.split(".", 1)[0],
        command,
        module=module,
        requirements=ANALYSIS_REQUIREMENTS,
        modules=ANALYSIS_MODULES,
    )


# The commands are the job definitions' (stack.py workers()).
WORKER_IMAGES: tuple[ImageSpec, ...] = (
    _worker(JobDefinitionName.LOADER, "loader", ("python", "-m", "loader")),
    _worker(JobDefinitionName.INDEX_FILE, "index_file", ("python", "-m", "index_file")),
    _worker(JobDefinitionName.RECORD_METADATA, "record_metadata", ("python", "-m", "record_metadata")),
    _worker(JobDefinitionName.CAROUSEL, "carousel", ("python", "-m", "carousel", "step"), also=CAROUSEL_PACKAGES[1:]),
    *(_analysis(described) for described in registry.builtin().values()),
)
# What a research group's own analysis builds FROM (examples/): the base, the analyses' dependencies
# and the kernel with the job SDK. Not a worker: no job definition runs it as it is.
SDK = ImageSpec(
    name="datacarousel-sdk",
    dockerfile="docker/sdk.Dockerfile",
    packages=("datacarousel",),
    command=(
        "python",
        "-c",
        "import datacarousel.job; print('the Data Carousel job SDK: build your analysis FROM this image')",
    ),
    help_command=("python", "-c", "import datacarousel.job"),
    modules=("datacarousel.job", "datacarousel.orbit", *ANALYSIS_MODULES),
    requirements=ANALYSIS_REQUIREMENTS,
)
IMAGES: dict[str, ImageSpec] = {spec.name: spec for spec in (BASE, SDK, *WORKER_IMAGES)}
# The HSDS service on ECS runs the HDF Group's public image (or a mirror of it): not built here.
HSDS_TEMPLATE_PARAMETER = HSDS_IMAGE_PARAMETER


def select(names: Iterable[str] | None = None) -> list[ImageSpec]:
    """Images by name (short names such as `loader` work too), base first; all when `names` is empty."""
    wanted = list(names or [])
    if not wanted:
        return [BASE, *WORKER_IMAGES]
    chosen: list[ImageSpec] = []
    for name in wanted:
        full = name if name.startswith("datacarousel-") else f"datacarousel-{name}"
        if full not in IMAGES:
            raise ImageError(f"unknown image {name!r}: choose from {', '.join(IMAGES)}")
        chosen.append(IMAGES[full])
    return sorted(set(chosen), key=lambda s: list(IMAGES).index(s.name))
