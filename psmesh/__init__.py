"""psmesh: a CDC data mesh for professional-services firms."""

__version__ = "0.1.0"
