"""The export extra (tensorflow, ai-edge-litert): imported on demand, with one clear error."""
from __future__ import annotations

import importlib

INSTALL_HINT = "pip install 'dnas-ee[export]'"


class MissingExtraError(ImportError):
  """The export extra (tensorflow, ai-edge-litert) is not installed."""


def require_extra(module: str):
  """Imports ``module`` of the export extra, or raises ``MissingExtraError`` saying how
  to install it."""
  try:
    return importlib.import_module(module)
  except ImportError as err:
    raise MissingExtraError(f"dnas-ee export needs {module.split('.')[0]} ({err.name or module} "
                            f"is not installed): {INSTALL_HINT}") from None
