"""Error types shared across layers (defined at the bottom, so any module may raise them)."""
from __future__ import annotations


class ConfigError(ValueError):
  """A config file, key or value that cannot be used."""
