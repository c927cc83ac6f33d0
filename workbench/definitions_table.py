"""The README's table of job definitions, from their descriptions: `python -m workbench.definitions_table`."""

from __future__ import annotations

from collections.abc import Iterable

from datacarousel import registry
from datacarousel.definitions import JobDefinition


def markdown(definitions: Iterable[JobDefinition]) -> str:
    rows = [
        "| definition | what it does | parameters (default) | result per orbit | reducer |",
        "|---|---|---|---|---|",
    ]
    for d in definitions:
        parameters = ", ".join(f"`{p.name}` ({p.default})" for p in d.parameters)
        rows.append(
            f"| `{d.name}` | {d.summary} | {parameters} | `{d.result_prefix}_O…{d.result_suffix}` | "
            f"{'yes' if d.reducer else 'no'} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown(registry.builtin().values()))  # noqa: T201
