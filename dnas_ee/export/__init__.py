"""Deployment: the derived early-exit network as integer LiteRT models and a runtime
that leaves early (``dnas-ee export`` / ``dnas-ee infer``).

The converter and the interpreter are an optional extra
(``pip install 'dnas-ee[export]'``); nothing else in the package imports them.
``dnas_ee.stages.export`` and ``Cascade`` import them when called and raise ``MissingExtraError``
(one line naming the install command) when they are absent.
"""
from __future__ import annotations

from dnas_ee.export.extra import INSTALL_HINT, MissingExtraError, require_extra


def __getattr__(name):
  if name == "Cascade":
    from dnas_ee.export.cascade import Cascade
    return Cascade
  raise AttributeError(name)


__all__ = ["Cascade", "INSTALL_HINT", "MissingExtraError", "require_extra"]
