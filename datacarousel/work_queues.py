"""Each job definition's own work queue and dead-letter queue, found by name.

A definition's WorkItems and its ReduceRequest travel on `<stack>-<definition>-work`; what fails
for good goes to `<stack>-<definition>-work-dlq`. The carousel and the workers find both with
GetQueueUrl from the stack's name and the definition's name, rather than from a variable each:

- the carousel serves every definition, built in or registered after the stack was created,
  with no change to its configuration (its role may use `<stack>-*-work*`, nothing else);
- a definition's workers receive only their own messages. One queue shared by all definitions
  would hand a worker other images' messages, and each such receive would count against the
  message's redrive limit, dead-lettering good work;
- each job role is granted exactly its own two queues.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from datacarousel.errors import ConfigError, TransientError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_QUEUE_NAME = 80  # SQS's limit on a queue name
WORK_SUFFIX = "-work"
DEAD_LETTER_SUFFIX = "-work-dlq"
_MISSING = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def queue_suffix(definition: str) -> str:
    """The part of the work queue's name after `<stack>-` (the template writes it under the stack's name)."""
    return f"{definition}{WORK_SUFFIX}"


def dead_letter_queue_suffix(definition: str) -> str:
    return f"{definition}{DEAD_LETTER_SUFFIX}"


def queue_name(stack: str, definition: str) -> str:
    return _checked(f"{stack}-{queue_suffix(definition)}")


def dead_letter_queue_name(stack: str, definition: str) -> str:
    return _checked(f"{stack}-{dead_letter_queue_suffix(definition)}")


def _checked(name: str) -> str:
    if len(name) > MAX_QUEUE_NAME:
        raise ConfigError(f"queue name {name!r} is longer than SQS allows ({MAX_QUEUE_NAME}): use a shorter name")
    return name


@dataclass(frozen=True)
class WorkQueue:
    definition: str
    url: str
    dead_letter_url: str


class WorkQueues:
    """The work queues of one stack, looked up once each."""

    def __init__(self, sqs: SQSClient, stack: str) -> None:
        self.sqs = sqs
        self.stack = stack
        self._found: dict[str, WorkQueue] = {}

    def of(self, definition: str) -> WorkQueue:
        """The definition's queues; ConfigError if the stack has none for it (an unregistered definition)."""
        if definition not in self._found:
            self._found[definition] = WorkQueue(
                definition,
                self._url(queue_name(self.stack, definition), definition),
                self._url(dead_letter_queue_name(self.stack, definition), definition),
            )
        return self._found[definition]

    def _url(self, name: str, definition: str) -> str:
        try:
            return str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING:
                raise ConfigError(
                    f"stack {self.stack!r} has no queue {name!r} for job definition {definition!r} "
                    "(hint: `datacarousel definitions list` names the definitions it runs)"
                ) from exc
            raise TransientError(f"looking up queue {name}: {exc}") from exc
        except BotoCoreError as exc:
            raise TransientError(f"looking up queue {name}: {exc}") from exc
