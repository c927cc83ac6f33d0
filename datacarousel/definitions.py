"""Job definitions described once: what a researcher's analysis is called, runs, takes and needs.

An analysis ships a `definition.toml` beside its code. Everything else is derived from that
description: the template's Batch job definition (command, parameter defaults, size), the image it
runs, the parameter checks at `datacarousel submit` (so bad parameters are refused before any
restore is paid for), the CLI's help, the status view, and the defaults the worker itself applies.
The carousel knows an analysis only through this description and its name; it never imports one.

The format (TOML; every key below is required unless a default is named):

    name = "RegionExtract"                 # the Batch JobDefinitionName; letters, digits, '-', '_'
    summary = "one sentence for the CLI and the README"
    image = "datacarousel-region-extract"  # image repository name
    image_parameter = "RegionExtractImage" # template parameter taking the image URI
    command = ["python", "-m", "batch_jobs.region_extract"]  # the job adds `<mode> --<param> <value>...`
    vcpus = 1
    memory_mib = 4096
    timeout_s = 21600
    visibility_timeout_s = 900             # of its work queue: longer than one file's work
    result_suffix = ".nc"                  # default ".npz"
    result_prefix = "CLIMARBLE"            # default "TERRA_BF_L1B": `<prefix>_O<orbit>_..._V001<suffix>`
    reducer = true                         # default false: whether a reduce step follows the last file
    constraints = [["lat_min", "<", "lat_max"]]  # default none; operators < <= !=

    [parameters.lat_min]
    type = "float"                         # float | int | str | list (comma-separated strings)
    default = 30.0
    low = -90.0                            # numbers: inclusive bounds (optional)
    high = 90.0
    choices = ["..."]                      # str and list: allowed values (optional)
    help = "Southern edge of the box (degrees north)."

Parameter values travel as strings (Batch parameters and work items are string maps); each value
is kept in one canonical spelling so that equal parameters give equal result digests.
"""

from __future__ import annotations

import enum
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datacarousel.errors import BadInput, ConfigError
from datacarousel.naming import FILE_PREFIX, BasicFusionName, result_key

# Short enough that `<stack>-<name>-work-dlq` fits an SQS queue name (80 characters).
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")
_PARAMETER_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Parameters the job's command takes besides the analysis's own: how the worker runs.
MODE_PARAMETER = "mode"
DEFAULT_MODE = "queue"
# The console's single-orbit run: an archive object (s3://bucket/key) in place of the work queue.
OBJECT_PARAMETER = "object"
NO_OBJECT = "none"
RESERVED_PARAMETERS = (MODE_PARAMETER, OBJECT_PARAMETER)
_OPERATORS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, "!=": lambda a, b: a != b}


class ParameterType(str, enum.Enum):
    FLOAT = "float"
    INT = "int"
    STR = "str"
    LIST = "list"  # comma-separated strings


@dataclass(frozen=True)
class Parameter:
    """One parameter of an analysis, with its type, default, bounds or choices, and help."""

    name: str
    type: ParameterType
    default: str  # canonical spelling
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def canonical(self, raw: Any) -> str:
        """The value's canonical string; ValueError naming the parameter and what is wrong."""
        if self.type in (ParameterType.FLOAT, ParameterType.INT):
            return self._number(raw)
        if self.type is ParameterType.LIST:
            items = list(raw) if isinstance(raw, (list, tuple)) else [p.strip() for p in str(raw).split(",")]
            items = [str(item).strip() for item in items]
            if not items or any(not item for item in items):
                raise ValueError(f"{self.name} must be a comma-separated list with no empty entry, got {raw!r}")
            bad = [item for item in items if self.choices and item not in self.choices]
            if bad:
                raise ValueError(f"{self.name}: unknown {', '.join(map(repr, bad))} (known: {', '.join(self.choices)})")
            if len(set(items)) != len(items):
                raise ValueError(f"{self.name} lists an entry twice: {raw!r}")
            return ",".join(items)
        text = str(raw)
        if self.choices and text not in self.choices:
            raise ValueError(f"{self.name} must be one of {', '.join(self.choices)}, got {text!r}")
        if not text:
            raise ValueError(f"{self.name} must not be empty")
        return text

    def _number(self, raw: Any) -> str:
        if isinstance(raw, bool):
            raise ValueError(f"{self.name} must be a number, got {raw!r}")
        try:
            value = float(raw) if self.type is ParameterType.FLOAT else float(int(str(raw).strip()))
        except (TypeError, ValueError):
            kind = "a number" if self.type is ParameterType.FLOAT else "a whole number"
            raise ValueError(f"{self.name} must be {kind}, got {raw!r}"[:200]) from None
        # NaN compares false with every bound, so it would pass a range check: refuse it by name.
        if not math.isfinite(value):
            raise ValueError(f"{self.name} must be a finite number, got {raw!r}")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ValueError(f"{self.name} must lie in {self.bounds()}, got {raw!r}")
        return repr(value) if self.type is ParameterType.FLOAT else str(int(value))

    def value(self, text: str) -> float | int | str | tuple[str, ...]:
        """A canonical string as the Python value the analysis uses."""
        if self.type is ParameterType.FLOAT:
            return float(text)
        if self.type is ParameterType.INT:
            return int(text)
        if self.type is ParameterType.LIST:
            return tuple(text.split(","))
        return text

    def bounds(self) -> str:
        low = "" if self.low is None else f"{self.low:g}"
        high = "" if self.high is None else f"{self.high:g}"
        return f"{low}..{high}"

    def describe(self) -> str:
        """One line for help texts: name, type, default, and what is allowed."""
        allowed = ""
        if self.choices:
            allowed = f"; one of {', '.join(self.choices)}" if self.type is ParameterType.STR else ""
            allowed = allowed or f"; any of {', '.join(self.choices)}"
        elif self.low is not None or self.high is not None:
            allowed = f"; {self.bounds()}"
        return f"{self.name} ({self.type.value}, default {self.default}{allowed}): {self.help}"


@dataclass(frozen=True)
class Constraint:
    """A relation two parameters must keep (for example a box that is not empty)."""

    left: str
    operator: str
    right: str

    def holds(self, values: Mapping[str, Any]) -> bool:
        return bool(_OPERATORS[self.operator](values[self.left], values[self.right]))

    def __str__(self) -> str:
        return f"{self.left} {self.operator} {self.right}"


@dataclass(frozen=True)
class JobDefinition:
    """An analysis the carousel can run on each file of a job (and reduce once at the end)."""

    name: str
    summary: str
    image: str
    image_parameter: str
    command: tuple[str, ...]
    vcpus: int
    memory_mib: int
    timeout_s: int
    visibility_timeout_s: int
    parameters: tuple[Parameter, ...]
    result_suffix: str = ".npz"
    result_prefix: str = FILE_PREFIX
    reducer: bool = False
    constraints: tuple[Constraint, ...] = ()
    source: str = field(default="", compare=False)  # where it was described (for messages)

    def parameter(self, name: str) -> Parameter:
        for candidate in self.parameters:
            if candidate.name == name:
                return candidate
        raise KeyError(f"{self.name} has no parameter {name!r}")

    def defaults(self) -> dict[str, str]:
        return {p.name: p.default for p in self.parameters}

    def validate(self, given: Mapping[str, Any]) -> dict[str, str]:
        """Every parameter in canonical spelling, defaults filled in; one BadInput naming every problem."""
        known = {p.name: p for p in self.parameters}
        problems = [
            f"unknown parameter {key!r} (known: {', '.join(known) or 'none'})" for key in given if key not in known
        ]
        out: dict[str, str] = {}
        for name, spec in known.items():
            try:
                out[name] = spec.canonical(given[name]) if name in given else spec.default
            except ValueError as exc:
                problems.append(str(exc))
        if not problems:
            values = self.values(out)
            problems = [
                f"needs {c} (got {values[c.left]!r} and {values[c.right]!r})"
                for c in self.constraints
                if not c.holds(values)
            ]
        if problems:
            raise BadInput(f"{self.name}: invalid parameters: " + "; ".join(problems))
        return out

    def values(self, canonical: Mapping[str, str]) -> dict[str, Any]:
        """Canonical strings (as `validate` returns them) as the Python values the analysis uses."""
        return {name: self.parameter(name).value(text) for name, text in canonical.items()}

    def result_key(self, job_id: str, name: BasicFusionName) -> str:
        return result_key(job_id, name, prefix=self.result_prefix, suffix=self.result_suffix)

    def batch_command(self) -> list[str]:
        """The Batch command: the analysis's command, the mode, the object of a single-orbit run (`none`:
        drain the work queue), then `--<param> Ref::<param>` each."""
        out = [*self.command, f"Ref::{MODE_PARAMETER}", option_name(OBJECT_PARAMETER), f"Ref::{OBJECT_PARAMETER}"]
        for p in self.parameters:
            out += [option_name(p.name), f"Ref::{p.name}"]
        return out

    def batch_parameters(self) -> dict[str, str]:
        """Defaults of the Batch parameters that `batch_command` refers to (what the console shows)."""
        return {MODE_PARAMETER: DEFAULT_MODE, OBJECT_PARAMETER: NO_OBJECT, **self.defaults()}

    def help_text(self) -> str:
        lines = [f"{self.name}: {self.summary}"]
        lines += [f"  {p.describe()}" for p in self.parameters]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The description as TOML/JSON-ready data (`from_dict` reads it back)."""
        out: dict[str, Any] = {
            "name": self.name,
            "summary": self.summary,
            "image": self.image,
            "image_parameter": self.image_parameter,
            "command": list(self.command),
            "vcpus": self.vcpus,
            "memory_mib": self.memory_mib,
            "timeout_s": self.timeout_s,
            "visibility_timeout_s": self.visibility_timeout_s,
            "result_suffix": self.result_suffix,
            "result_prefix": self.result_prefix,
            "reducer": self.reducer,
            "constraints": [[c.left, c.operator, c.right] for c in self.constraints],
            "parameters": {},
        }
        for p in self.parameters:
            entry: dict[str, Any] = {"type": p.type.value, "default": p.default, "help": p.help}
            if p.low is not None:
                entry["low"] = p.low
            if p.high is not None:
                entry["high"] = p.high
            if p.choices:
                entry["choices"] = list(p.choices)
            out["parameters"][p.name] = entry
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "") -> JobDefinition:
        """A description from parsed TOML or JSON; ConfigError naming every problem at once."""
        return _Reader(data, source or "job definition").read()


def option_name(parameter: str) -> str:
    """The command-line option of a parameter: `vza_max` -> `--vza-max`."""
    return "--" + parameter.replace("_", "-")


def load(path: str | Path) -> JobDefinition:
    """Read a `definition.toml`; ConfigError with the file's name and every problem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read job definition {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return JobDefinition.from_dict(data, str(path))


def by_name(definitions: Sequence[JobDefinition]) -> dict[str, JobDefinition]:
    out: dict[str, JobDefinition] = {}
    for definition in definitions:
        if definition.name in out:
            raise ConfigError(f"job definition {definition.name!r} is described twice ({definition.source})")
        out[definition.name] = definition
    return out


def find(definitions: Mapping[str, JobDefinition], name: str) -> JobDefinition:
    """The definition called `name`; BadInput listing the known ones otherwise."""
    try:
        return definitions[name]
    except KeyError:
        raise BadInput(
            f"unknown job definition {name!r}; known: {', '.join(sorted(definitions)) or 'none'} "
            "(hint: `datacarousel definitions list`)"
        ) from None


class _Reader:
    """Checks a description's fields, collecting every problem before failing."""

    _TOP = frozenset(
        {
            "name",
            "summary",
            "image",
            "image_parameter",
            "command",
            "vcpus",
            "memory_mib",
            "timeout_s",
            "visibility_timeout_s",
            "result_suffix",
            "result_prefix",
            "reducer",
            "constraints",
            "parameters",
        }
    )
    _PARAMETER = frozenset({"type", "default", "help", "low", "high", "choices"})

    def __init__(self, data: Mapping[str, Any], source: str) -> None:
        self.data = data
        self.source = source
        self.problems: list[str] = []

    def field(self, key: str, kind: type, default: Any = None) -> Any:
        if key not in self.data:
            if default is None:
                self.problems.append(f"missing {key!r}")
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problems.append(f"{key!r} must be {kind.__name__}, got {type(value).__name__}")
            return default
        return value

    def positive(self, key: str) -> int:
        value = self.field(key, int)
        if isinstance(value, int) and value < 1:
            self.problems.append(f"{key!r} must be at least 1, got {value}")
        return value or 1

    def read(self) -> JobDefinition:
        if not isinstance(self.data, Mapping):
            raise ConfigError(f"{self.source}: a job definition is a table of keys")
        unknown = sorted(set(self.data) - self._TOP)
        if unknown:
            self.problems.append(f"unknown key(s) {', '.join(unknown)}")
        name = self.field("name", str, "")
        if name and not _NAME_RE.fullmatch(name):
            self.problems.append(f"name {name!r} must match {_NAME_RE.pattern}")
        command = self.field("command", list, [])
        if not command or not all(isinstance(part, str) and part for part in command):
            self.problems.append("'command' must be a non-empty list of non-empty strings")
        parameters = self.parameters(self.field("parameters", dict, {}))
        constraints = self.constraints(self.field("constraints", list, []), {p.name for p in parameters})
        definition = JobDefinition(
            name=name,
            summary=self.field("summary", str, ""),
            image=self.field("image", str, ""),
            image_parameter=self.field("image_parameter", str, ""),
            command=tuple(str(part) for part in command),
            vcpus=self.positive("vcpus"),
            memory_mib=self.positive("memory_mib"),
            timeout_s=self.positive("timeout_s"),
            visibility_timeout_s=self.positive("visibility_timeout_s"),
            parameters=parameters,
            result_suffix=self.field("result_suffix", str, ".npz"),
            result_prefix=self.field("result_prefix", str, FILE_PREFIX),
            reducer=self.field("reducer", bool, False),
            constraints=constraints,
            source=self.source,
        )
        if self.problems:
            raise ConfigError(f"{self.source}: " + "; ".join(self.problems))
        return definition

    def parameters(self, table: Mapping[str, Any]) -> tuple[Parameter, ...]:
        out: list[Parameter] = []
        for name, spec in table.items():
            where = f"parameter {name!r}"
            if not _PARAMETER_RE.fullmatch(name) or name in RESERVED_PARAMETERS:
                reserved = " or ".join(map(repr, RESERVED_PARAMETERS))
                self.problems.append(f"{where}: names are lower_snake_case and not {reserved}")
                continue
            if not isinstance(spec, Mapping):
                self.problems.append(f"{where} must be a table")
                continue
            unknown = sorted(set(spec) - self._PARAMETER)
            if unknown:
                self.problems.append(f"{where}: unknown key(s) {', '.join(unknown)}")
            try:
                kind = ParameterType(spec.get("type", ""))
            except ValueError:
                self.problems.append(f"{where}: type must be one of {', '.join(t.value for t in ParameterType)}")
                continue
            if "default" not in spec or not isinstance(spec.get("help"), str):
                self.problems.append(f"{where} needs a default and a help text")
                continue
            bounds = [spec.get(k) for k in ("low", "high")]
            if any(b is not None and (isinstance(b, bool) or not isinstance(b, (int, float))) for b in bounds):
                self.problems.append(f"{where}: low and high must be numbers")
                continue
            choices = spec.get("choices", [])
            if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
                self.problems.append(f"{where}: choices must be a list of strings")
                continue
            low, high = (float(b) if b is not None else None for b in bounds)
            draft = Parameter(name, kind, "", spec["help"], low, high, tuple(choices))
            try:
                out.append(
                    Parameter(name, kind, draft.canonical(spec["default"]), spec["help"], low, high, draft.choices)
                )
            except ValueError as exc:
                self.problems.append(f"{where}: default: {exc}")
        return tuple(out)

    def constraints(self, rows: list[Any], names: set[str]) -> tuple[Constraint, ...]:
        out: list[Constraint] = []
        for row in rows:
            ok = isinstance(row, list) and len(row) == 3 and row[1] in _OPERATORS and {row[0], row[2]} <= names
            if not ok:
                self.problems.append(
                    f"constraint {row!r} must be [parameter, one of {' '.join(_OPERATORS)}, parameter]"
                )
                continue
            out.append(Constraint(row[0], row[1], row[2]))
        return tuple(out)
