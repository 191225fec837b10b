"""Error types shared across layers (defined at the bottom, so any module may raise them)."""
from __future__ import annotations


class ConfigError(ValueError):
  """A config file, key or value that cannot be used."""


class SweepError(RuntimeError):
  """Members of a sweep failed (named, with their errors), or its executor cannot run."""
