"""Backbone features at every candidate exit position, computed once (frozen backbone).

With ``search.backbone='frozen'`` the backbone's weights, BatchNorm statistics and bit
widths are those of ``init.backbone`` and never change, so everything an exit branch
sees is a fixed function of the image: the backbone's features after its block,
resized to the branch's first slot resolution (the first thing ``ExitBranch`` does).
They are computed here once, in inference mode, together with the final classifier's
logits, and kept memory-mapped on disk; the search, the branch training and the scoring
of random/NSGA-II candidates then never run the backbone.

Per image the cache holds ``sum_p res_p^2 C_p`` feature values (float16: the branches
quantize them to at most 8 bits, far coarser than float16's 11-bit mantissa) and the
final logits (float32: the final exit is exactly the static network's). Training images
are stored in ``copies`` augmented views (pad + crop, flip, as the data config says):
epoch ``e`` of a cached training reads view ``e % copies``, so branches see as many
distinct views as there are copies. ResNet-20 on CIFAR-10 with exits after blocks 1-8
at 8x8: 17,408 values = 34 KB per image, 1.3 GB per copy of the 37,500 training images.

The cache lives in ``$DNAS_EE_FEATURE_CACHE`` (default ``~/.cache/dnas_ee/features``),
one folder per key: a hash of the backbone's arrays, the data config, the positions and
resolutions, and the number of copies. Any change gives a new folder; an interrupted
build leaves no folder (it is written under a temporary name and renamed at the end).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dnas_ee.data.augment import augment_batch
from dnas_ee.data.batching import batch_indices
from dnas_ee.models.layers import resize
from dnas_ee.models.supernet import relaxed_architecture
from dnas_ee.space.genotype import genotype_space
from dnas_ee.train.parallel import host_slice, shard_batch
from dnas_ee.train.retrain import HARD

FEATURE_DTYPE = np.float16
CACHE_VERSION = 1


def cache_root() -> Path:
  return Path(os.environ.get("DNAS_EE_FEATURE_CACHE", "~/.cache/dnas_ee/features")).expanduser()


@dataclasses.dataclass(frozen=True)
class CachedSplit:
  """One split's cached features: ``features[j]`` [rows, r_j, r_j, C_j] at the j-th
  position, ``logits`` [rows, K] of the final classifier, ``labels`` [n]; ``rows`` is
  ``copies * n`` (row ``c * n + i`` is view ``c`` of image ``i``)."""
  features: tuple
  logits: np.ndarray
  labels: np.ndarray
  copies: int

  def batch(self, mesh, seed: int, step: int, batch_size: int):
    """The global batch of ``step`` (a pure function of seed and step, as
    ``loop.host_batch``): ``(features tuple, final logits, labels)`` on the mesh. Epoch
    ``e`` reads view ``e % copies``."""
    n = len(self.labels)
    idx = batch_indices(seed, step, n, batch_size)[host_slice(batch_size)]
    view = (step // max(n // batch_size, 1)) % self.copies
    rows = view * n + idx
    arrays = [np.asarray(f[rows], np.float32) for f in self.features]
    arrays += [np.asarray(self.logits[rows], np.float32), self.labels[idx].astype(np.int32)]
    placed = shard_batch(mesh, *arrays)
    return tuple(placed[:-2]), placed[-2], placed[-1]


@dataclasses.dataclass(frozen=True)
class FeatureCache:
  """The cached features of the training (``copies`` views) and validation splits."""
  path: Path
  positions: tuple[int, ...]
  resolutions: tuple[int, ...]
  train: CachedSplit
  val: CachedSplit


def cache_key(backbone, data_config, positions, resolutions, copies: int,
              augment: tuple) -> str:
  record = json.dumps(dict(version=CACHE_VERSION, backbone=backbone.fingerprint,
                           data=data_config.to_dict() if hasattr(data_config, "to_dict")
                           else dict(data_config),
                           positions=list(positions), resolutions=list(resolutions),
                           copies=int(copies), augment=list(augment)), sort_keys=True)
  return hashlib.sha256(record.encode()).hexdigest()[:16]


def _static_network(backbone, genotype_static):
  """(graphdef, params, arch, stats) of the trained static network, for the features."""
  from dnas_ee.models.supernet import Supernet
  from dnas_ee.train.search import split_model
  model = Supernet(genotype_space(genotype_static), rngs=nnx.Rngs(0))
  backbone.copy_into(model)
  return split_model(model)


@functools.partial(jax.jit, static_argnames=("graphdef", "positions", "resolutions"))
def _features(graphdef, params, arch, stats, images, *, positions, resolutions):
  model = nnx.merge(graphdef, params, arch, stats)
  probs = relaxed_architecture(model, HARD)
  feats, start, x = [], 0, images
  for position, res in zip(positions, resolutions):
    x = model.forward_blocks(x, probs, start, position, train=False)
    feats.append(resize(x, res))
    start = position
  x = model.forward_blocks(x, probs, start, model.space.num_blocks, train=False)
  return feats, model.forward_head(x, train=False)


def _augment(seed: int, copy: int, start: int, images, pad: int, flip: bool):
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), copy), start)
  return augment_batch(key, jnp.asarray(images), pad=pad, flip=flip)


def _write_split(folder: Path, name: str, network, images, copies: int, positions, resolutions,
                 augment: tuple, batch_size: int, seed: int) -> None:
  graphdef, params, arch, stats = network
  n = len(images)
  files = None
  for copy in range(copies):
    for start in range(0, n, batch_size):
      batch = np.asarray(images[start:start + batch_size], np.float32)
      rows = len(batch)
      if rows < batch_size:   # one compiled shape
        batch = np.concatenate([batch, np.zeros((batch_size - rows,) + batch.shape[1:], np.float32)])
      if augment[0] or augment[1]:
        batch = _augment(seed, copy, start, batch, *augment)
      feats, logits = _features(graphdef, params, arch, stats, jnp.asarray(batch),
                                positions=positions, resolutions=resolutions)
      if files is None:
        files = [np.lib.format.open_memmap(folder / f"{name}_p{p}.npy", mode="w+",
                                           dtype=FEATURE_DTYPE, shape=(copies * n,) + f.shape[1:])
                 for p, f in zip(positions, feats)]
        files.append(np.lib.format.open_memmap(folder / f"{name}_logits.npy", mode="w+",
                                               dtype=np.float32,
                                               shape=(copies * n, logits.shape[1])))
      at = copy * n + start
      for f, value in zip(files, list(feats) + [logits]):
        f[at:at + rows] = np.asarray(value)[:rows]
  for f in files:
    f.flush()


def _open_split(folder: Path, name: str, positions, labels, copies: int) -> CachedSplit:
  feats = tuple(np.load(folder / f"{name}_p{p}.npy", mmap_mode="r") for p in positions)
  logits = np.load(folder / f"{name}_logits.npy", mmap_mode="r")
  return CachedSplit(feats, logits, np.asarray(labels), copies)


def feature_cache(backbone, genotype_static, space, data, data_config, *, copies: int,
                  augment: tuple, seed: int = 0, batch_size: int = 256,
                  log=print) -> FeatureCache:
  """The cache of ``space``'s exit positions for ``data`` (built on first use).

  Args:
    backbone: the ``TrainedBackbone``; ``genotype_static`` its static genotype (bits).
    space: the search space (positions and each branch's first slot resolution).
    data: the loaded ``Dataset``; ``data_config`` its config (part of the key).
    copies: augmented views of the training split; ``augment``: ``(pad, flip)``.
    seed: the augmentation seed (the data seed: shared by every member of a study).
  """
  positions = tuple(b.position for b in space.branches)
  resolutions = tuple(b.slot_res[0] for b in space.branches)
  copies = max(int(copies), 1) if (augment[0] or augment[1]) else 1
  key = cache_key(backbone, data_config, positions, resolutions, copies, augment)
  folder = cache_root() / key
  if not (folder / "meta.json").exists():
    tmp = folder.with_name(folder.name + f".partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.time()
    network = _static_network(backbone, genotype_static)
    log(f"feature cache: computing backbone features at positions {list(positions)} "
        f"({copies} augmented view(s) of {len(data.train.labels)} training images, "
        f"{len(data.val.labels)} validation images) into {folder}")
    _write_split(tmp, "train", network, data.train.images, copies, positions, resolutions,
                 augment, batch_size, seed)
    _write_split(tmp, "val", network, data.val.images, 1, positions, resolutions, (0, False),
                 batch_size, seed)
    (tmp / "meta.json").write_text(json.dumps(dict(
        backbone=backbone.source, fingerprint=backbone.fingerprint, positions=list(positions),
        resolutions=list(resolutions), copies=copies, augment=list(augment),
        train=len(data.train.labels), val=len(data.val.labels),
        build_s=round(time.time() - t0, 3)), indent=1))
    if folder.exists():   # another process finished first
      shutil.rmtree(tmp)
    else:
      tmp.rename(folder)
  return FeatureCache(folder, positions, resolutions,
                      _open_split(folder, "train", positions, data.train.labels, copies),
                      _open_split(folder, "val", positions, data.val.labels, 1))
