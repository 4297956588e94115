"""Faust processors: materialized views and derived events."""
