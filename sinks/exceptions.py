"""Errors raised by the sinks package.

Three kinds, because each one calls for a different reaction of the runner:

* :class:`RecordRejected` — one record cannot be written (undecodable bytes, a
  value the table refuses): it goes to the dead-letter topic and the rest
  flows on.
* :class:`TargetUnavailable` — the database or the registry cannot be reached
  right now: the batch is retried with backoff, consumption paused, nothing
  committed.
* :class:`SinkError` — anything else (a missing table, bad credentials): the
  sink stops with a message that says what and where.

Messages name topics, partitions, offsets, tables and SQLSTATEs, never a row
value (values may be confidential and messages reach logs and dead letters).
"""

from __future__ import annotations


class SinkError(Exception):
    """Base class of every error raised by the sinks package; a fatal one when raised as such."""


class RecordRejected(SinkError):
    """One record cannot be written; ``reason`` goes into its dead letter."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class TargetUnavailable(SinkError):
    """The target database (or the schema registry) cannot be reached; retry later."""
