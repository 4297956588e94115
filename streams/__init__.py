"""Capture and publishing: PostgreSQL logical replication to Avro change events on Kafka."""
