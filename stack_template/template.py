"""The whole template: every resource family, composed in dependency order.

The template is composed of one small function per resource family; each adds
its resources to the template and returns what it created, so later families
can refer to them. Every shared name (tables, indexes, job queue, job
definitions, environment variables, outputs) comes from `datacarousel.contract`.
Logical IDs are API (stack updates, the embedded environment, the golden test):
keep them stable.
"""

from __future__ import annotations

import json
from typing import Any

from awacs.aws import Condition, StringLike
from troposphere import GetAtt, If, Ref, Select, Split, Sub, Template

from datacarousel import contract
from datacarousel.contract import Env
from stack_template.batch import add_batch, add_schedule, job_environment
from stack_template.common import stack_arn, under
from stack_template.hsds import add_hsds
from stack_template.iam import Access, add_roles
from stack_template.outputs import add_outputs
from stack_template.parameters import HAS_ARCHIVE_PREFIX, add_parameters
from stack_template.storage import (
    add_buckets,
    add_hsds_secrets,
    add_key,
    add_log_group,
    add_queues,
    add_tables,
    archive_bucket_arn,
)


def build_template(*, hsds_data_nodes: int = 4, hsds_cpu: int = 4096, hsds_memory_mib: int = 16384) -> Template:
    """The whole Data Carousel. HSDS sizing is fixed at generation (Fargate CPU/memory pairs)."""
    if not 1 <= hsds_data_nodes <= 9:
        raise ValueError("hsds_data_nodes must be between 1 and 9")
    t = Template(Description="Data Carousel: batch analyses over the Terra BasicFusion archive in Glacier Deep Archive")
    t.set_version("2010-09-09")
    p = add_parameters(t)
    key = add_key(t)
    queues = add_queues(t, key)
    buckets = add_buckets(t, p, queues.restore_events, queues.restore_events_policy)
    tables = add_tables(t, key)
    secrets = add_hsds_secrets(t, p, key)
    log_group = add_log_group(t, key)

    def objects(bucket: Any) -> Sub:
        return under(bucket, "/*")

    archive_arn = archive_bucket_arn()
    prefix = f"${{{p.archive_prefix.title}}}"
    access = Access(
        key=GetAtt(key, "Arn"),
        archive_bucket=archive_arn,
        archive_objects=under(archive_arn, f"/{prefix}*"),
        archive_listing=If(
            HAS_ARCHIVE_PREFIX,
            Condition(StringLike({"s3:prefix": [Sub(f"{prefix}*")]})),
            Ref("AWS::NoValue"),
        ),
        results_bucket=GetAtt(buckets.results, "Arn"),
        results_objects=objects(GetAtt(buckets.results, "Arn")),
        hsds_bucket=GetAtt(buckets.hsds, "Arn"),
        hsds_objects=objects(GetAtt(buckets.hsds, "Arn")),
        tables={name: GetAtt(table, "Arn") for name, table in tables.items()},
        queues=queues,
        secrets=secrets,
        image_repositories=stack_arn("ecr", f"repository/${{{p.image_repository_prefix.title}}}*"),
    )
    roles = add_roles(t, access)
    hsds = add_hsds(
        t,
        p,
        buckets=buckets,
        roles=roles,
        secrets=secrets,
        log_group=log_group,
        data_nodes=hsds_data_nodes,
        cpu=hsds_cpu,
        memory_mib=hsds_memory_mib,
    )
    resources: dict[str, Any] = {
        Env.ARCHIVE_BUCKET: Ref(buckets.archive),
        Env.RESULTS_BUCKET: Ref(buckets.results),
        Env.HSDS_BUCKET: Ref(buckets.hsds),
        Env.INDEX_QUEUE_URL: Ref(queues.index),
        Env.INDEX_DLQ_URL: Ref(queues.index_dlq),
        Env.RESTORE_EVENTS_QUEUE_URL: Ref(queues.restore_events),
        Env.RESTORE_EVENTS_DLQ_URL: Ref(queues.restore_events_dlq),
        Env.FILES_TABLE: Ref(tables[contract.FILES_TABLE_NAME]),
        Env.JOBS_TABLE: Ref(tables[contract.JOBS_TABLE_NAME]),
        Env.JOB_FILES_TABLE: Ref(tables[contract.JOB_FILES_TABLE_NAME]),
        Env.INDEX_REQUESTS_TABLE: Ref(tables[contract.INDEX_REQUESTS_TABLE_NAME]),
        Env.BATCH_JOB_QUEUE: contract.JOB_QUEUE_NAME,
    }
    environment = job_environment(p, resources, hsds.endpoint)
    batch = add_batch(t, p, roles=roles, secrets=secrets, log_group=log_group, environment=environment)
    # The queue's name, read back from the queue itself so the output follows the resource.
    resources[Env.BATCH_JOB_QUEUE] = Select(1, Split("/", Ref(batch.job_queue)))
    add_schedule(t, p, batch, roles)
    add_outputs(t, resources, batch=batch, roles=roles, hsds=hsds, secrets=secrets, log_group=log_group)
    return t


def template_json(template: Template | None = None) -> str:
    """The template as the JSON `python stack.py` prints (stable key order)."""
    return json.dumps((template or build_template()).to_dict(), indent=1, sort_keys=True) + "\n"
