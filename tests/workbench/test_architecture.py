"""ARCHITECTURE.md says what the code is: its generated part is current, its size exceptions are exact."""

from __future__ import annotations

import re

from workbench import architecture

TEXT = (architecture.ROOT / "ARCHITECTURE.md").read_text()


def test_the_generated_part_is_what_the_code_says() -> None:
    """Fails when an import, a layer or a package's docstring changed: run `python -m workbench.architecture`
    and paste its output over the generated part."""
    assert architecture.generated_part(TEXT) == architecture.generate()


def test_the_floor_plan_has_the_kernel_at_the_bottom_and_the_workbench_on_top() -> None:
    plan = architecture.floor()
    assert plan.layers[0] == ("workbench",)
    assert plan.layers[-1] == ("datacarousel",)
    found = architecture.edges(plan.packages)
    assert found["datacarousel"] == set()  # the kernel knows no part
    assert "workbench" not in set().union(*(found[p] for p in plan.packages))


def test_every_oversized_file_or_function_is_a_named_exception_and_every_exception_is_one() -> None:
    section = TEXT.split("## Exceptions to the size rule", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^- `([^`]+)`", section, re.M))
    found = set(architecture.oversized(architecture.floor().packages))
    found = {f for f in found if not f.startswith("stack_template/")}  # resource families may be long
    assert sorted(found - named) == [], "over the size rule: split it, or name it in ARCHITECTURE.md with the reason"
    assert sorted(named - found) == [], "named in ARCHITECTURE.md but within the rule now: remove the line"
