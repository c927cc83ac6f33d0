"""The Data Carousel as one CloudFormation template: `python stack.py > stack.json` prints it.

An operator creates the stack from the CloudFormation console (or `aws cloudformation
deploy`) with a VPC, subnets, a security group and the image URIs at hand; see
docs/operator.md. The template is built by the `stack_template` package, one module per
resource family; this file is its command-line entry, and a template module in its own
right (`datacarousel up --stack-file stack.py` reads the names below).
"""

from __future__ import annotations

import sys

try:
    from stack_template import build_template, local_parameters, restore_notification_configuration, template_json
except ImportError as exc:  # a Python without the project's dependencies: one line, not a traceback
    if __name__ != "__main__":
        raise
    print(f"error: cannot build the template: {exc} (run `make stack`: it uses the project's .venv)", file=sys.stderr)  # noqa: T201
    sys.exit(2)

__all__ = ["build_template", "local_parameters", "restore_notification_configuration", "template_json"]

if __name__ == "__main__":
    print(template_json(), end="")  # noqa: T201 - the template is this program's output
