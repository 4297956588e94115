"""Confluent-compatible schema registry: Avro schemas, state in a compacted Kafka topic.

``store`` holds the state and its rules, ``compatibility`` wraps Apache
Avro's checker, ``canonical`` says when two schemas are the same, ``records``
is Confluent's topic format, ``app`` the REST routes, ``service`` the process.
"""
