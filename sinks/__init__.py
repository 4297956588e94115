"""Sinks: the ERP and the reporting store."""
