"""Errors of the embedded environment. Each message says what failed and what to do about it."""

from __future__ import annotations

from datacarousel.errors import DataCarouselError


class LocalEnvironmentError(DataCarouselError):
    """The embedded environment could not be brought up, inspected or stopped."""


class PortInUse(LocalEnvironmentError):
    """A port the environment was told to use is already taken."""


class MissingDependency(LocalEnvironmentError):
    """A program or package the environment needs is not installed."""


class StartupFailed(LocalEnvironmentError):
    """A service exited or did not become ready in time (its log file is named)."""


class StackFailed(LocalEnvironmentError):
    """moto's CloudFormation did not create the stack (the failure reasons are listed)."""


class NotRunning(LocalEnvironmentError):
    """The environment of a state directory is not up."""
