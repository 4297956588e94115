"""Errors of the processors."""


class ProcessorError(Exception):
    """Base of the processors' errors."""


class UndecodableEvent(ProcessorError):
    """An input record that is not Avro in Confluent wire format with a known schema."""


class BadChangeEvent(ProcessorError):
    """A decoded change event that lacks what its table's processor needs (a column, a key)."""
