"""Checks of a project against its warehouse's data (``segql check``)."""
