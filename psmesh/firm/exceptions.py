"""Errors of the demo firm."""


class FirmError(Exception):
    """Base of every error the demo firm raises."""


class IllegalTransition(FirmError):
    """A status change the firm's process does not allow (a closed deal reopened, say)."""


class SourcesNotEmpty(FirmError):
    """The simulator's tables already hold rows and a fresh start was not asked for."""
