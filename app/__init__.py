"""Batch Calls: create, run and control outbound batch calls from the desktop."""

__version__ = "0.1.0"
