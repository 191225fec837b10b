"""A frozen backbone's training pieces: the forward on cached features and the update mask.

With ``search.backbone='frozen'`` the backbone's weights, statistics and bit widths are
those of ``init.backbone`` (``dnas_ee.train.warm_start``), its features are cached
(``dnas_ee.train.feature_cache``), and only the exit branches run and train.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from dnas_ee.models.supernet import Supernet

BACKBONE_PARTS = ("stem", "blocks", "head")


def frozen_forward(model: Supernet, cached, arch, *, train: bool = True):
  """Logits of every exit from cached backbone features (a frozen backbone).

  ``cached`` is ``(features at each exit position, resized to its branch's first slot
  resolution; final logits)`` (``dnas_ee.train.feature_cache``); only the exit
  branches run (in training mode unless ``train`` is False).
  """
  features, final_logits = cached
  return [model.forward_exit(f, arch, j, train=train) for j, f in enumerate(features)] + [
      final_logits]


def zero_backbone(tree):
  """``tree`` (shaped as the weights) with the backbone's leaves set to zero: a frozen
  backbone's updates, weight decay included."""
  return jax.tree_util.tree_map_with_path(
      lambda path, x: jnp.zeros_like(x)
      if getattr(path[0], "key", None) in BACKBONE_PARTS else x, tree)
