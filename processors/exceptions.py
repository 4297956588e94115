"""Errors of the processors."""

from aiokafka.errors import KafkaError


class ProcessorError(Exception):
    """Base of the processors' errors."""


class UndecodableEvent(ProcessorError):
    """An input record that is not Avro in Confluent wire format with a known schema."""


class BadChangeEvent(ProcessorError):
    """A decoded change event that lacks what its table's processor needs (a column, a key)."""


class RegistryUnavailable(KafkaError):
    """The schema registry did not answer, or failed (not: it does not know the schema): an error of the
    infrastructure, so the batch is handled again (processors/app.py), never its events dead-lettered."""
