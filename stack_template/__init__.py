"""The Data Carousel as one CloudFormation template (troposphere, IAM with awacs).

`python stack.py > stack.json` prints the template (`template_json()`); `build_template()`
returns it as a troposphere `Template`. A template is data, built by one module per
resource family, each adding its resources and returning what later families refer to:

- `parameters`: what the operator gives at stack creation (network, images, tunables);
- `storage`: the KMS key, the buckets, the queues, the tables, the HSDS secret, the log group;
- `iam`: the roles and their least-privilege policies;
- `hsds`: HSDS on ECS Fargate behind Cloud Map;
- `batch`: the compute environment, the job queue, the job definitions, the carousel schedule;
- `outputs`: what the workbench and the operator read back;
- `template`: `build_template`, composing them in order;
- `local`: helpers for the embedded environment (moto) only, never part of the template;
- `common`: names and policy helpers the families share.

The package reads only the kernel, `datacarousel` (the import-linter layers contract);
the workbench imports it to create the stack in moto.
"""

from stack_template.batch import WorkerSpec, analysis_spec, job_environment, workers
from stack_template.common import HSDS_PORT, RESTORE_EVENTS, SECRET_PASSWORD_KEY, SECRET_USERNAME_KEY
from stack_template.iam import analysis_policy, role_prefix, worker_policies
from stack_template.local import LOCAL_IMAGE_TAG, local_parameters, restore_notification_configuration
from stack_template.parameters import IMAGE_URI_PATTERN
from stack_template.storage import archive_bucket_arn, archive_bucket_name
from stack_template.template import build_template, template_json

__all__ = [
    "HSDS_PORT",
    "IMAGE_URI_PATTERN",
    "LOCAL_IMAGE_TAG",
    "RESTORE_EVENTS",
    "SECRET_PASSWORD_KEY",
    "SECRET_USERNAME_KEY",
    "WorkerSpec",
    "analysis_policy",
    "analysis_spec",
    "archive_bucket_arn",
    "archive_bucket_name",
    "build_template",
    "job_environment",
    "local_parameters",
    "restore_notification_configuration",
    "role_prefix",
    "template_json",
    "worker_policies",
    "workers",
]
