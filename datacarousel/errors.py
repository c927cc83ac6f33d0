"""Domain exceptions. Workers translate them into dead-letter reasons or exit codes at the edge."""

from __future__ import annotations


class DataCarouselError(Exception):
    """Base of every error the project raises on purpose."""


class ConfigError(DataCarouselError):
    """The environment is missing variables or holds malformed ones (all are named)."""


class MalformedMessage(DataCarouselError):
    """A queue message that can never be processed: it goes to the dead-letter queue."""


class BadFileName(DataCarouselError):
    """A name that does not follow the BasicFusion naming rule."""


class BadInput(DataCarouselError):
    """Input that will never succeed however often it is retried (poison): dead-letter it."""


class NotReadable(DataCarouselError):
    """The object is still archived (or its restore expired): it cannot be read now."""


class TransientError(DataCarouselError):
    """A service is briefly unavailable: retry later, the message returns to the queue."""
