"""Dynamic early-exit inference: run a derived network segment by segment.

A derived network (a ``Supernet`` on ``genotype_space(genotype)``) is cut into
*segments*, one per active early exit plus the final one:

    segment 0:  stem, blocks 1..p_1, branch of exit 1       -> features, logits_1
    segment k:  blocks p_k+1..p_{k+1}, branch of exit k+1    -> features, logits_{k+1}
    last:       blocks p_last+1..N, head                     -> logits_final

Each segment is one jitted pure function of (its weights, its input features),
composed of the network's own segment methods (``Supernet.forward_blocks``,
``forward_exit``, ``forward_head``, which ``Supernet.__call__`` composes too).
A sample leaves at the first exit whose confidence reaches the exit's threshold:
the segment's logits come to the host, ``host_confidence`` scores them and
``conf >= tau`` is decided there, exactly as ``pipeline.exit_table`` and
``dnas_ee.exits.decision.first_exit`` do; samples that leave stop computing. An early exit with
threshold ``+inf`` never fires, so it is *pruned*: its branch is not computed at
all (its blocks join the next segment).

Batched mode (``EarlyExitExecutor.run``): after each exit the surviving samples
are gathered into a smaller batch, padded to the next *bucket* size (powers of
two from ``min_bucket``, capped at ``batch_size``), so a segment is compiled for at
most ``len(buckets)`` shapes (``trace_counts`` counts them; the gather itself is
one tiny program per pair of buckets). BatchNorm runs in inference mode (running
statistics), so every row is computed independently and padding rows (zero
images, or copies of a row of the previous batch) cannot change a real row.
Single-sample mode (``EarlyExitExecutor.predict_one``) runs one sample and returns
at the first exit that fires: the latency a deployed device would see.

The results equal the "evaluate every exit" reference (``pipeline.exit_logits``
then ``first_exit``) bit for bit: same modules, same inference-mode
arithmetic, only the work of samples that have left is skipped. Two details keep
it exact: segments never run a batch of one row by default (``min_bucket=2``: XLA
rounds batch-1 programs differently), and scores are computed on the host row by
row (``host_confidence``), so a sample lying exactly on a calibrated threshold
(thresholds are observed calibration scores) exits at the same place in both.

``with_thresholds`` gives the same network under other thresholds, sharing the
compiled segments; ``measure_latencies`` and ``measure_throughput`` time it.

Example:
  >>> ex = EarlyExitExecutor.from_state(space, setup.graphdef, state.params,
  ...                                   setup.arch, state.stats, thresholds=[0.9, 0.8],
  ...                                   measure="max_prob")        # doctest: +SKIP
  >>> out = ex.run(images)                                         # doctest: +SKIP
  >>> out.predictions, out.exits                                   # doctest: +SKIP
  >>> ex.predict_one(images[0])        # (prediction, exit, confidence) # doctest: +SKIP
"""
from __future__ import annotations

import copy
import dataclasses
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dnas_ee.exits.confidence import CONFIDENCE_MEASURES, host_confidence
from dnas_ee.exits.decision import check_thresholds
from dnas_ee.models.supernet import Supernet, relaxed_architecture
from dnas_ee.relax import Relaxation
from dnas_ee.space.space import SearchSpace

_HARD = Relaxation(hard=True)


def _keep_argument(path) -> bool:
  """Leaves passed as arguments even when baking: the activation clips, so that no
  quantization step becomes a constant (XLA would turn ``x / step`` into a product)."""
  return "clip" in jax.tree_util.keystr(path)


# --------------------------------------------------------------------------- plan


@dataclasses.dataclass(frozen=True)
class SegmentPlan:
  """What one segment computes (static under ``jit``).

  Attributes:
    start: first backbone block (0-based) of the segment.
    stop: one past its last block.
    exit: index of the exit the segment ends with (0-based; ``num_exits - 1`` is
      the final classifier).
    final: whether the segment ends with the final classifier (head).
  """
  start: int
  stop: int
  exit: int
  final: bool


def bucket_sizes(batch_size: int, min_size: int = 1) -> tuple[int, ...]:
  """Powers of two from ``min_size`` below ``batch_size``, then ``batch_size`` itself.

  Example:
    >>> bucket_sizes(100)
    (1, 2, 4, 8, 16, 32, 64, 100)
    >>> bucket_sizes(100, min_size=2)
    (2, 4, 8, 16, 32, 64, 100)
  """
  if int(batch_size) != batch_size or batch_size < 1:
    raise ValueError(f"batch_size must be an integer >= 1, got {batch_size}")
  if int(min_size) != min_size or min_size < 1:
    raise ValueError(f"min_size must be an integer >= 1, got {min_size}")
  sizes, b = [], int(min_size)
  while b < batch_size:
    sizes.append(b)
    b *= 2
  return tuple(sizes) + (max(int(batch_size), int(min_size)),)


def bucket_for(n: int, buckets: Sequence[int]) -> int:
  """Smallest bucket holding ``n`` rows (``1 <= n <= buckets[-1]``).

  Example:
    >>> bucket_for(5, (1, 2, 4, 8))
    8
  """
  for b in buckets:
    if b >= n:
      return b
  raise ValueError(f"{n} rows do not fit the largest bucket {buckets[-1]}; split the batch")


def plan_segments(space: SearchSpace, thresholds) -> tuple[SegmentPlan, ...]:
  """Segments of a derived network under ``thresholds`` (``+inf`` exits pruned).

  Args:
    space: the derived network's space (``genotype_space``).
    thresholds: ``[E-1]`` early-exit thresholds (``[E]`` with a final ``-inf`` too).

  Returns:
    One ``SegmentPlan`` per active early exit, then the final segment.
  """
  tau = check_thresholds(thresholds, len(space.branches))
  plans, start = [], 0
  for j, branch in enumerate(space.branches):
    if tau[j] == np.inf:
      continue
    plans.append(SegmentPlan(start, branch.position, j, False))
    start = branch.position
  plans.append(SegmentPlan(start, space.num_blocks, len(space.branches), True))
  return tuple(plans)


# --------------------------------------------------------------------------- segments


def _segment_filter(plan: SegmentPlan):
  """nnx filter of the variables one segment uses (its blocks, stem, branch or head)."""
  def owned(path, _) -> bool:
    part = path[0]
    if part == "stem":
      return plan.start == 0
    if part == "blocks":
      return plan.start <= int(path[1]) < plan.stop
    if part == "head":
      return plan.final
    if part == "branches":
      return not plan.final and int(path[1]) == plan.exit
    return False
  return owned


def _apply_segment(model: Supernet, arch, x, plan: SegmentPlan):
  """One segment through ``Supernet``'s own segment methods, in inference mode:
  ``(features [B, h, w, c], or None after the head; logits [B, K])``."""
  x = model.forward_blocks(x, arch, plan.start, plan.stop, train=False)
  if plan.final:
    return None, model.forward_head(x, train=False)
  return x, model.forward_exit(x, arch, plan.exit, train=False)


@jax.jit
def _compact(x, index):
  """Rows ``index`` of ``x`` (the survivors, padded with a repeated row)."""
  return jnp.take(x, index, axis=0)


class _Program:
  """The jitted function of one segment, its argument leaves and its trace count."""

  def __init__(self):
    self.fn, self.args, self.traces = None, None, 0

  @classmethod
  def build(cls, model: Supernet, plan: SegmentPlan, arch, bake: bool) -> _Program:
    program = cls()
    # The segment's own variables are its arguments; the rest of the network is only
    # needed to rebuild the module and never enters the computation.
    graphdef, state, rest = nnx.split(model, _segment_filter(plan), ...)
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
    leaves = [jnp.asarray(leaf) for _, leaf in paths_leaves]
    passed = [not bake or _keep_argument(path) for path, _ in paths_leaves]

    def traced(args, x):
      program.traces += 1    # runs at trace time only: counts compiled shapes
      it = iter(args)
      full = [next(it) if p else leaf for leaf, p in zip(leaves, passed)]
      net = nnx.merge(graphdef, jax.tree.unflatten(treedef, full), rest)
      return _apply_segment(net, arch, x, plan)

    program.fn = jax.jit(traced)
    program.args = [leaf for leaf, p in zip(leaves, passed) if p]
    return program


@dataclasses.dataclass(frozen=True)
class ExitResult:
  """What the executor returns, per sample.

  Attributes:
    predictions: int ``[n]`` predicted class at the exit taken.
    exits: int ``[n]`` index of the exit taken (``num_exits - 1`` is the final one).
    confidences: float32 ``[n]`` confidence at the exit taken.
    logits: float32 ``[n, K]`` logits of the exit taken.
  """
  predictions: np.ndarray
  exits: np.ndarray
  confidences: np.ndarray
  logits: np.ndarray


class EarlyExitExecutor:
  """Runs a derived early-exit network with real early exiting (see the module docstring).

  Attributes:
    space: the derived network's space.
    thresholds: ``[E-1]`` float64 early-exit thresholds (``+inf``: pruned).
    measure: the confidence measure (``dnas_ee.exits.CONFIDENCE_MEASURES``).
    batch_size: the largest batch (bucket) of batched mode.
    buckets: the batch sizes a segment is compiled for.
    segments: the ``SegmentPlan`` of each segment, in order.
    trace_counts: per segment, how many times it was traced (compiled shapes).
    bake_weights: whether the weights are compiled in as constants.
  """

  def __init__(self, model: Supernet, thresholds, measure: str, *, batch_size: int = 256,
               min_bucket: int = 2, bake_weights: bool = False):
    """Builds the executor from a network module (weights are copied out of it).

    Args:
      model: a ``Supernet`` on a derived space (``genotype_space(genotype)``).
      thresholds: ``[E-1]`` early-exit thresholds (or ``[E]`` with a final ``-inf``);
        ``+inf`` disables (prunes) an exit.
      measure: confidence measure the thresholds are expressed in.
      batch_size: largest batch of batched mode; batches are processed in chunks
        of this size and padded to ``bucket_sizes(batch_size, min_bucket)``.
      min_bucket: the smallest batch a segment runs at, single-sample mode
        included (one real row, the rest padding). XLA compiles batch-1 programs
        with other kernels (matrix-vector products) whose float32 rounding differs
        in the last bits from the batched ones, which can flip a sample whose
        confidence lies within ~1e-6 of a threshold; the default 2 keeps every row
        bit-identical to the batched reference. 1 gives true batch-1 programs.
      bake_weights: compile the weights and BatchNorm statistics into the segment
        programs as constants (the activation clips stay arguments), as a deployed
        network would: XLA folds the weight fake-quantization and the BatchNorm
        arithmetic at compile time, 2-3x faster small programs on CPU. XLA also
        rewrites some ops on constants (e.g. dots), so the logits are no longer
        bit-identical to the reference (differences of ~1e-2 were seen after a
        quantizer flips a bin): off by default; for timing deployments.

    Raises:
      ValueError: the network is not derived, or bad thresholds, measure or batch size.
    """
    space = model.space
    if not space.fixed_exits or space.num_bits != 1 or any(
        len(ops) != 1 for b in space.branches for ops in b.slot_ops):
      raise ValueError("EarlyExitExecutor needs a derived network: a Supernet built on "
                       "genotype_space(genotype) (one op per slot, one bit width per group, "
                       "exits fixed); derive the genotype first (dnas_ee.derive_genotype)")
    if measure not in CONFIDENCE_MEASURES:
      raise ValueError(f"unknown confidence measure {measure!r}; use one of "
                       f"{CONFIDENCE_MEASURES}")
    self.space = space
    self.measure = measure
    self.thresholds = check_thresholds(thresholds, len(space.branches))
    self.batch_size = int(batch_size)
    self.buckets = bucket_sizes(batch_size, min_bucket)
    self.segments = plan_segments(space, self.thresholds)
    self.num_exits = space.num_exits
    self.num_classes = space.backbone.num_classes
    self.bake_weights = bool(bake_weights)
    self._image_shape = tuple(space.backbone.image_shape)
    self._model = nnx.clone(model)     # a snapshot: later changes to ``model`` do not leak in
    self._arch = jax.tree.map(jnp.asarray, relaxed_architecture(self._model, _HARD))
    self._programs: dict[SegmentPlan, _Program] = {}   # shared with ``with_thresholds`` copies
    self._build_programs()

  @classmethod
  def from_state(cls, space: SearchSpace, graphdef, params, arch, stats, thresholds,
                 measure: str, *, batch_size: int = 256, min_bucket: int = 2,
                 bake_weights: bool = False) -> EarlyExitExecutor:
    """From the split network of ``pipeline.load_trained``: ``(setup.graphdef,
    state.params, setup.arch, state.stats)``."""
    model = nnx.merge(graphdef, params, arch, stats, copy=True)
    if model.space != space:
      raise ValueError("the network's graphdef was built on another space than the one given; "
                       "pass the space returned with it by pipeline.load_trained")
    return cls(model, thresholds, measure, batch_size=batch_size, min_bucket=min_bucket,
               bake_weights=bake_weights)

  def with_thresholds(self, thresholds) -> EarlyExitExecutor:
    """The same network under other thresholds, sharing every compiled segment.

    Segments that the new thresholds keep (same blocks, same exit) are not
    compiled again; pruning or enabling an exit builds the segments it changes.
    """
    other = copy.copy(self)
    other.thresholds = check_thresholds(thresholds, len(self.space.branches))
    other.segments = plan_segments(self.space, other.thresholds)
    other._build_programs()
    return other

  @property
  def trace_counts(self) -> list[int]:
    """Per segment, how many times it was traced (one per compiled batch shape)."""
    return [self._programs[plan].traces for plan in self.segments]

  def _build_programs(self) -> None:
    for plan in self.segments:
      if plan not in self._programs:
        self._programs[plan] = _Program.build(self._model, plan, self._arch, self.bake_weights)
    self._fns = [self._programs[plan].fn for plan in self.segments]
    self._leaves = [self._programs[plan].args for plan in self.segments]

  # ------------------------------------------------------------------------- running

  def _segment(self, s: int, x):
    return self._fns[s](self._leaves[s], x)

  def _check_images(self, images) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or tuple(images.shape[1:]) != self._image_shape:
      raise ValueError(f"images must be [n, {', '.join(map(str, self._image_shape))}] (NHWC, "
                       f"normalized like the training data), got shape {images.shape}")
    return images

  def run(self, images) -> ExitResult:
    """Batched early exiting over ``images`` (processed in chunks of ``batch_size``).

    Args:
      images: float ``[n, H, W, C]`` normalized images.

    Returns:
      An ``ExitResult`` for the ``n`` samples, in input order.
    """
    images = self._check_images(images)
    n = images.shape[0]
    out = ExitResult(np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.float32),
                     np.zeros((n, self.num_classes), np.float32))
    for start in range(0, n, self.batch_size):
      self._run_chunk(images[start:start + self.batch_size], start, out)
    return out

  def _run_chunk(self, chunk: np.ndarray, offset: int, out: ExitResult) -> None:
    live = np.arange(chunk.shape[0]) + offset          # output rows of the live samples
    bucket = bucket_for(len(live), self.buckets)
    x = _pad_rows(chunk, bucket)
    for s, plan in enumerate(self.segments):
      features, logits = self._segment(s, x)
      logits = np.asarray(logits)[:len(live)]
      conf = host_confidence(logits, self.measure)
      fire = (np.ones(len(live), bool) if plan.final else
              conf >= self.thresholds[plan.exit])
      rows = live[fire]
      out.exits[rows] = plan.exit
      out.confidences[rows] = conf[fire]
      out.predictions[rows] = logits[fire].argmax(-1)
      out.logits[rows] = logits[fire]
      if plan.final or fire.all():
        return
      if fire.any():
        keep = np.flatnonzero(~fire)
        live = live[keep]
        bucket = bucket_for(len(keep), self.buckets)
        index = np.zeros(bucket, np.int32)
        index[:len(keep)] = keep
        x = _compact(features, jnp.asarray(index))
      else:
        x = features

  def predict_one(self, image) -> tuple[int, int, float]:
    """One sample alone (batch ``buckets[0]``: 1 real row), stopping at the first exit
    that fires.

    Args:
      image: float ``[H, W, C]`` (or ``[1, H, W, C]``) normalized image.

    Returns:
      ``(prediction, exit index, confidence)``.
    """
    x = np.zeros((self.buckets[0],) + self._image_shape, np.float32)
    x[0] = np.asarray(image, np.float32).reshape(self._image_shape)
    for s, plan in enumerate(self.segments):
      x, logits = self._segment(s, x)
      logits = np.asarray(logits)[:1]
      conf = host_confidence(logits, self.measure)[0]
      if plan.final or conf >= self.thresholds[plan.exit]:
        return int(logits[0].argmax()), plan.exit, float(conf)
    raise AssertionError("the final segment always returns")

  def run_single(self, images) -> ExitResult:
    """``predict_one`` over each image in turn (the deployed, sample-by-sample path)."""
    images = self._check_images(images)
    n = images.shape[0]
    out = ExitResult(np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.float32),
                     np.zeros((n, self.num_classes), np.float32))
    for i in range(n):
      out.predictions[i], out.exits[i], out.confidences[i] = self.predict_one(images[i])
    out.logits[:] = np.nan   # predict_one does not transfer logits
    return out

  def all_exit_logits(self, images) -> np.ndarray:
    """``[E, n, K]`` logits of every exit with no exiting (pruned exits are NaN)."""
    images = self._check_images(images)
    n, k = images.shape[0], self.num_classes
    logits = np.full((self.num_exits, n, k), np.nan, np.float32)
    for start in range(0, n, self.batch_size):
      chunk = images[start:start + self.batch_size]
      x = jnp.asarray(_pad_rows(chunk, bucket_for(len(chunk), self.buckets)))
      for s, plan in enumerate(self.segments):
        x, out = self._segment(s, x)
        logits[plan.exit, start:start + len(chunk)] = np.asarray(out)[:len(chunk)]
    return logits

  def warmup(self, buckets: Sequence[int] | None = None) -> None:
    """Compiles every segment for ``buckets`` (default all) and the compaction gathers."""
    for b in (self.buckets if buckets is None else buckets):
      bucket = bucket_for(b, self.buckets)
      x = jnp.zeros((bucket,) + self._image_shape, jnp.float32)
      for s in range(len(self.segments)):
        x, logits = self._segment(s, x)
        jax.block_until_ready(logits)

  @property
  def max_compiled_shapes(self) -> int:
    """Upper bound on the segment programs: segments x buckets."""
    return len(self.segments) * len(self.buckets)


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
  """``x`` padded with zero rows to ``rows`` rows."""
  if x.shape[0] == rows:
    return x
  pad = np.zeros((rows - x.shape[0],) + x.shape[1:], x.dtype)
  return np.concatenate([x, pad])


# --------------------------------------------------------------------------- timing


@dataclasses.dataclass(frozen=True)
class LatencyStats:
  """Wall-clock per-sample latency of single-sample inference, in seconds.

  Attributes:
    median_s, mean_s, p90_s: over the timed samples.
    samples: how many samples were timed.
    exit_rates: ``[E]`` fraction of the timed samples leaving at each exit.
  """
  median_s: float
  mean_s: float
  p90_s: float
  samples: int
  exit_rates: list

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def measure_latency(executor: EarlyExitExecutor, images, *, warmup: int = 5,
                    repeats: int = 1) -> LatencyStats:
  """Per-sample wall-clock latency of ``executor.predict_one`` (see ``measure_latencies``)."""
  return measure_latencies({"net": executor}, images, warmup=warmup, repeats=repeats)["net"]


def measure_latencies(executors: dict, images, *, warmup: int = 5,
                      repeats: int = 1) -> dict:
  """Per-sample wall-clock latency of ``predict_one`` of several executors, interleaved.

  Every segment is compiled first (smallest bucket), then ``warmup`` samples run
  untimed. Each sample is then timed on every executor in turn (so drifts of the
  machine, e.g. its clock, hit them alike), ``repeats`` times each, keeping the
  minimum (scheduler noise only ever adds); the statistics are over samples.

  Args:
    executors: name -> ``EarlyExitExecutor``.
    images: float ``[n, H, W, C]``; every one is timed.
    warmup: untimed samples run first on each executor (cycled from ``images``).
    repeats: timings per sample and executor.

  Returns:
    name -> ``LatencyStats``.
  """
  if not executors:
    raise ValueError("measure_latencies needs at least one executor")
  first = next(iter(executors.values()))
  images = first._check_images(images)
  if images.shape[0] < 1:
    raise ValueError("measuring latency needs at least one image")
  for ex in executors.values():
    ex.warmup([ex.buckets[0]])
    for i in range(warmup):
      ex.predict_one(images[i % len(images)])
  times = {name: [] for name in executors}
  exits = {name: [] for name in executors}
  clock = time.perf_counter
  for image in images:
    for name, ex in executors.items():
      best, exit_index = np.inf, -1
      for _ in range(max(1, repeats)):
        t0 = clock()
        _, exit_index, _ = ex.predict_one(image)
        best = min(best, clock() - t0)
      times[name].append(best)
      exits[name].append(exit_index)
  out = {}
  for name, ex in executors.items():
    t = np.asarray(times[name])
    rates = np.bincount(exits[name], minlength=ex.num_exits) / len(t)
    out[name] = LatencyStats(float(np.median(t)), float(t.mean()), float(np.quantile(t, 0.9)),
                             int(len(t)), rates.tolist())
  return out


def measure_throughput(executor: EarlyExitExecutor, images, *, repeats: int = 3) -> float:
  """Samples per second of batched ``executor.run`` over ``images`` (best of ``repeats``).

  One untimed pass over ``images`` first compiles every shape the timed passes use
  (the compaction is a deterministic function of the images).
  """
  images = executor._check_images(images)
  executor.run(images)
  best = np.inf
  for _ in range(max(1, repeats)):
    t0 = time.perf_counter()
    executor.run(images)
    best = min(best, time.perf_counter() - t0)
  return images.shape[0] / best
