"""Error types that cross module boundaries."""

__all__ = ["CamlogError", "CliError"]


class CamlogError(Exception):
    """Base of camlog's own errors: the message is meant for the user."""


class CliError(CamlogError):
    """A command cannot do what was asked; printed without a traceback, exit status 2."""
