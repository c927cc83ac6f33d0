"""The stack's outputs: what the workbench, the operator and registered job definitions read back.

One output per shared resource of `datacarousel.contract` (the DC_* variables, by
`contract.SHARED_RESOURCES`), each job definition's ARN, the HSDS endpoint and secret,
the log group, the roles a registered job definition takes, and the HSDS cluster and service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from troposphere import GetAtt, Output, Ref, Template
from troposphere import logs as tlogs
from troposphere import secretsmanager as tsm

from datacarousel import contract
from datacarousel.hsds_accounts import HsdsRole
from stack_template.batch import Batch
from stack_template.hsds import Hsds
from stack_template.iam import Roles

RESEARCHER_POLICY_OUTPUT = "ResearcherPolicyArn"  # the researchers' managed policy (stack_template.iam)


def add_outputs(
    t: Template,
    resources: dict[str, Any],
    *,
    batch: Batch,
    roles: Roles,
    hsds: Hsds,
    secrets: Mapping[HsdsRole, tsm.Secret],
    log_group: tlogs.LogGroup,
) -> None:
    for shared in contract.SHARED_RESOURCES:
        t.add_output(Output(shared.output, Description=shared.description, Value=resources[shared.env]))
    for definition, job_definition in batch.job_definitions.items():
        t.add_output(
            Output(
                f"{job_definition.title}Arn",
                Description=f"Batch job definition {definition}",
                Value=Ref(job_definition),
            )
        )
    t.add_output(
        Output(contract.HSDS_ENDPOINT_OUTPUT, Description="HS_ENDPOINT of the HSDS service", Value=hsds.endpoint)
    )
    t.add_output(
        Output(
            contract.HSDS_READER_SECRET_OUTPUT,
            Description="Secrets Manager secret of the analyses' HSDS user (read-only) and its password",
            Value=Ref(secrets[HsdsRole.READER]),
        )
    )
    t.add_output(Output("LogGroupName", Description="CloudWatch Logs group of every job", Value=Ref(log_group)))
    # What `datacarousel definitions register` gives a researcher's job definition.
    t.add_output(
        Output(
            contract.RESEARCHER_ROLE_OUTPUT,
            Description="Job role of registered job definitions",
            Value=GetAtt(roles.researcher, "Arn"),
        )
    )
    t.add_output(
        Output(
            contract.ANALYSIS_EXECUTION_ROLE_OUTPUT,
            Description="Execution role of the analyses (image pull, logs, the HSDS reader's secret)",
            Value=GetAtt(roles.execution[HsdsRole.READER], "Arn"),
        )
    )
    t.add_output(
        Output(
            RESEARCHER_POLICY_OUTPUT,
            Description="Managed policy to attach to researchers: what the datacarousel CLI needs",
            Value=Ref(roles.researcher_policy),
        )
    )
    t.add_output(Output("HsdsClusterName", Description="ECS cluster running HSDS", Value=Ref(hsds.cluster)))
    t.add_output(Output("HsdsServiceArn", Description="ECS service running HSDS", Value=Ref(hsds.service)))
