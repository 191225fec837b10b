"""Building per-op LUTs: evaluate every op with a cost model, cached and in parallel.

``build_lut`` evaluates the unique ops of a list with the analytic model or ZigZag,
over worker processes when the build is long, reusing the rows of a cache file
(the LUT file itself) so that only new ops are evaluated.

Example:
  >>> from dnas_ee.space.signature import OpSignature
  >>> sig = OpSignature("conv", 8, 8, 16, 32, kernel=3)
  >>> lut = build_lut([sig], "edge_tpu_like", model="analytic", workers=1, progress=False)
  >>> lut.lookup(sig).macs
  294912
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Iterable

from dnas_ee.hw.accelerators.description import Accelerator
from dnas_ee.hw.accelerators.load import load_accelerator
from dnas_ee.hw.lut.format import BuildStats, Lut, LutError, load_lut, op_key, save_lut, utc_now
from dnas_ee.hw.models import zigzag_model
from dnas_ee.hw.models.analytic import MODEL as ANALYTIC_MODEL
from dnas_ee.hw.models.analytic import evaluate_analytic
from dnas_ee.hw.models.op_cost import OpCost
from dnas_ee.hw.models.zigzag_model import ZigZagError
from dnas_ee.space.signature import OpSignature


def resolve_model(model: str, acc: Accelerator, mapping_search: bool = False,
                  residency: str = "onchip") -> tuple[str, str]:
  """``(name, version)`` of the model that will fill the LUT, e.g. ``('zigzag', '3.9.1-onchip-fixed')``."""
  if model not in ("auto", "zigzag", "analytic"):
    raise ValueError(f"model={model!r}: use 'auto', 'zigzag' or 'analytic'")
  if model == "auto":
    model = "zigzag" if zigzag_model.zigzag_available() and acc.zigzag_hardware else "analytic"
  if model == "analytic":
    return "analytic", ANALYTIC_MODEL.split("-", 1)[1]
  if not acc.zigzag_hardware:
    raise ZigZagError(f"model='zigzag' but accelerator {acc.name!r} ({acc.path}) names no ZigZag "
                      "files; use model='analytic' or add a 'zigzag:' section")
  return "zigzag", zigzag_model.zigzag_model_version(mapping_search, residency)


def _evaluate(job: tuple[str, Accelerator, str, bool, str]) -> tuple[str, OpCost]:
  """One LUT row (module level so that worker processes can run it)."""
  key, acc, model, mapping_search, residency = job
  sig = OpSignature.from_key(key)
  if model == "zigzag":
    return key, zigzag_model.evaluate_zigzag(sig, acc, mapping_search=mapping_search,
                                             residency=residency)
  return key, evaluate_analytic(sig, acc)


def _run_jobs(jobs: list[tuple], workers: int, progress: bool, desc: str) -> dict[str, OpCost]:
  from tqdm.auto import tqdm
  results: dict[str, OpCost] = {}
  with tqdm(total=len(jobs), desc=desc, disable=not progress, unit="op") as bar:
    if workers <= 1 or len(jobs) <= 1:
      for job in jobs:
        key, cost = _evaluate(job)
        results[key] = cost
        bar.update()
      return results
    # spawn, not fork: the parent may hold JAX/XLA threads, which fork does not survive.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
      futures = [pool.submit(_evaluate, job) for job in jobs]
      for future in concurrent.futures.as_completed(futures):
        key, cost = future.result()
        results[key] = cost
        bar.update()
  return results


def _reusable_rows(cache_path: Path, acc: Accelerator, name: str, version: str,
                   progress: bool) -> dict[str, OpCost]:
  if not cache_path.exists():
    return {}
  try:
    cached = load_lut(cache_path)
  except LutError as err:
    raise LutError(f"{err} (it is the cache of this build: delete it or pass another "
                   "cache_path to rebuild from scratch)") from None
  if (cached.accelerator_hash == acc.description_hash and cached.model_name == name
      and cached.model_version == version):
    return dict(cached.rows)
  if progress:
    print(f"dnas-ee: cache {cache_path} was built for {cached.accelerator!r} "
          f"({cached.accelerator_hash[:12]}, {cached.model_name}-{cached.model_version}), not "
          f"{acc.name!r} ({acc.description_hash[:12]}, {name}-{version}): evaluating every op "
          "and overwriting it", file=sys.stderr)
  return {}


# Rough seconds per op (measured with zigzag-dse 3.9.1), and the start-up of one worker
# process (it imports dnas_ee, hence JAX): a pool only pays off for long builds.
_SECONDS_PER_OP = {"analytic": 0.001, "zigzag-fixed": 0.03, "zigzag-search": 2.5}
_POOL_WORTH_S = 20.0


def _default_workers(model_name: str, mapping_search: bool, num_ops: int) -> int:
  """In-process when the whole build is expected to take under ~20 s, else every core."""
  kind = model_name if model_name != "zigzag" else (
      "zigzag-search" if mapping_search else "zigzag-fixed")
  expected_s = num_ops * _SECONDS_PER_OP[kind]
  return (os.cpu_count() or 1) if expected_s > _POOL_WORTH_S else 1


def build_lut(signatures: Iterable[OpSignature], accelerator: Accelerator | str | os.PathLike, *,
              model: str = "auto", cache_path: str | os.PathLike | None = None,
              workers: int | None = None, progress: bool = True, space_signature: str = "",
              mapping_search: bool = False, residency: str = "onchip") -> Lut:
  """Evaluates every unique op signature on an accelerator into a LUT.

  Args:
    signatures: the ops (duplicates are evaluated once).
    accelerator: a loaded description, a shipped name, or a path.
    model: ``'zigzag'``, ``'analytic'``, or ``'auto'`` (ZigZag when installed and the
      description names ZigZag files, else analytic). With ZigZag, pooling/add/gap
      rows fall back to the analytic model (their row ``model`` says so).
    cache_path: a LUT file to reuse and update: its rows are reused when it was built
      for the same accelerator hash and model, only new ops are evaluated, and the
      file is rewritten with the union of its rows and the new ones.
    workers: processes to spread the evaluations over (``1``: in this process;
      ``None`` or ``0``: every core when the build is expected to take more than
      ~20 s, i.e. ZigZag with mapping search or thousands of ops, else in-process:
      a worker process needs seconds to start, as it imports dnas_ee and JAX).
    progress: show a tqdm bar and print how many ops were evaluated vs reused.
    space_signature: the caller's hash of the search space, stored in the LUT.
    mapping_search: ZigZag only: search the mapping (slow) instead of the fixed one.
    residency: ZigZag only: ``'onchip'`` (activations on chip when they fit, weights
      read once from DRAM: the analytic model's homes) or ``'dram'`` (ZigZag's
      one-layer view, every operand from and to DRAM); see ``zigzag_model``.

  Returns:
    A ``Lut`` with exactly the requested ops, ``build_stats`` telling evaluated/reused.
  """
  acc = accelerator if isinstance(accelerator, Accelerator) else load_accelerator(accelerator)
  name, version = resolve_model(model, acc, mapping_search, residency)
  keys = list(dict.fromkeys(op_key(s) for s in signatures))
  cached = _reusable_rows(Path(cache_path), acc, name, version, progress) if cache_path else {}
  todo = [k for k in keys if k not in cached]
  workers = _default_workers(name, mapping_search, len(todo)) if not workers else workers
  if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
    raise ValueError(f"workers={workers!r}: give a positive number of processes (1 = in-process, "
                     "None = automatic)")
  fresh = _run_jobs([(k, acc, name, mapping_search, residency) for k in todo],
                    min(workers, max(len(todo), 1)), progress, f"LUT {acc.name} ({name})")
  stats = BuildStats(evaluated=len(todo), reused=len(keys) - len(todo))
  if progress:
    source = f" from {cache_path}" if cache_path else ""
    print(f"dnas-ee: LUT for {acc.name!r} ({name}-{version}): {stats.evaluated} ops evaluated, "
          f"{stats.reused} reused{source}", file=sys.stderr)
  header = dict(accelerator=acc.name, accelerator_hash=acc.description_hash, model_name=name,
                model_version=version, space_signature=space_signature, created=utc_now())
  lut = Lut(rows={k: cached[k] if k in cached else fresh[k] for k in keys}, build_stats=stats,
            **header)
  if cache_path:
    union = Lut(rows={**cached, **fresh}, **header)
    save_lut(union, cache_path)
    if set(union.rows) == set(keys):  # the cache file holds exactly this LUT
      lut = dataclasses.replace(lut, path=str(cache_path))
  return lut


__all__ = ["build_lut", "resolve_model"]
