"""The Data Carousel CloudFormation template (placeholder until the template lands).

`python stack.py > stack.json` prints the template.
"""

from __future__ import annotations

from troposphere import Template


def build_template() -> Template:
    template = Template(Description="Data Carousel")
    return template


def local_parameters() -> dict[str, str]:
    """Parameter values the embedded environment passes to moto's CloudFormation."""
    return {}


if __name__ == "__main__":
    print(build_template().to_json())  # noqa: T201 - the template is this program's output
