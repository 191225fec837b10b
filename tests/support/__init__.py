"""Helpers shared across the test folders (importable as ``support``: the top-level
conftest puts ``tests/`` on ``sys.path``)."""
