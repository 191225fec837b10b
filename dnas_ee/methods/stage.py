"""The registry of methods: where each method's ``genotype.json`` comes from.

- ``dnas``: the differentiable search; the genotype is derived from the learned
  architecture (``search_arch.json``, ``derive.*``).

- ``static``: the backbone alone, every block at ``method.bits`` (0: the widest
  of ``space.bits``); the reference every row is also reported against.
- ``hand_placed``: an exit after every candidate position, each the same fixed
  branch ``method.branch_ops`` (slots past the given ops are ``identity``) at
  ``method.bits`` (SDN/MSDNet style), no search.
- ``random`` / ``evolutionary``: ``method.evaluations`` candidates scored with
  the supernet trained by the search stage (``method.supernet``: 'uniform' trains
  it with the architecture frozen at its uniform init, 'dnas' with the learned
  architecture as the dnas search does), drawn uniformly or bred by NSGA-II; the
  non-dominated set is kept in ``method_search.json`` and one genotype picked by
  ``loss.target`` (``evolution.PICK_RULE``).
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from dnas_ee.data.shapes import dataset_shape
from dnas_ee.methods import evolution
from dnas_ee.methods.encoding import decode, encoding_bounds, one_hot_arch
from dnas_ee.methods.scoring import GenotypeScorer
from dnas_ee.space.genotype import ExitGene, Genotype
from dnas_ee.space.ops import parse_op
from dnas_ee.train import build
from dnas_ee.train.derivation import derive_searched
from dnas_ee.train.loop import is_primary
from dnas_ee.train.setup import SCORED_METHODS as SCORED, load_search_state

METHODS = ("dnas", "static", "hand_placed", "random", "evolutionary")
SUPERNETS = ("uniform", "dnas")
RESULT_FILE = "method_search.json"


def check_method(config) -> None:
  """Raises ``ValueError`` naming a ``method.*`` value that cannot be used."""
  m = config.method
  if m.name not in METHODS:
    raise ValueError(f"unknown method.name {m.name!r}; use one of {METHODS}")
  if m.supernet not in SUPERNETS:
    raise ValueError(f"unknown method.supernet {m.supernet!r}; use one of {SUPERNETS}")
  if m.name in SCORED and (m.evaluations < 1 or m.population < 2):
    raise ValueError(f"method.evaluations={m.evaluations} must be >= 1 and method.population="
                     f"{m.population} >= 2")
  for op in m.branch_ops:
    parse_op(op)
  if m.bits and m.bits not in tuple(config.space.bits):
    raise ValueError(f"method.bits={m.bits} is not one of space.bits={tuple(config.space.bits)}; "
                     "use 0 for the widest")


def trains_supernet(config) -> bool:
  """Whether the method needs the search stage (a trained supernet)."""
  return config.method.name == "dnas" or config.method.name in SCORED


def _bits(config, space) -> int:
  return int(config.method.bits or max(space.backbone_bits[0]))


def static_genotype(config, space) -> Genotype:
  bits = _bits(config, space)
  return Genotype(space.backbone, (), (bits,) * space.num_blocks, space.edge_bits)


def hand_placed_genotype(config, space) -> Genotype:
  bits, given = _bits(config, space), tuple(config.method.branch_ops)
  exits = []
  for branch in space.branches:
    if len(given) > branch.depth:
      raise ValueError(f"method.branch_ops has {len(given)} ops for {branch.depth} branch slots")
    ops = given + ("identity",) * (branch.depth - len(given))
    exits.append(ExitGene(branch.position, ops, branch.slot_res, bits))
  return Genotype(space.backbone, tuple(exits), (bits,) * space.num_blocks, space.edge_bits)


def select_genotype(config, workdir) -> Genotype:
  """The genotype of the run's method; writes ``genotype.json``.

  A scored method reuses ``method_search.json`` when the work dir holds it (the
  selection is not repeated on a resumed run).
  """
  check_method(config)
  workdir = Path(workdir)
  name = config.method.name
  if name == "dnas":
    genotype = derive_searched_run(config, workdir)
  elif name in SCORED and (workdir / RESULT_FILE).exists():
    record = json.loads((workdir / RESULT_FILE).read_text())
    genotype = Genotype.from_json(record["front"][record["picked"]]["genotype"])
  elif name in SCORED:
    genotype = _scored_genotype(config, workdir)
  else:
    space = build.build_space(config, *dataset_shape(config.data))
    genotype = (static_genotype if name == "static" else hand_placed_genotype)(config, space)
  if is_primary():
    genotype.save(workdir / "genotype.json")
  return genotype


def derive_searched_run(config, workdir) -> Genotype:
  """``dnas``: the discrete genotype of the learned architecture (``search_arch.json``)."""
  workdir = Path(workdir)
  arch_path = workdir / "search_arch.json"
  if not arch_path.exists():
    raise FileNotFoundError(f"{arch_path} is missing: run `dnas-ee search` on this work dir first")
  arch = json.loads(arch_path.read_text())
  data_shape, num_classes = dataset_shape(config.data)   # no need to load the images
  space = build.build_space(config, data_shape, num_classes)
  final_temperature = build.schedule_from(config.search.op_temperature,
                                          config.search.steps)(config.search.steps)
  return derive_searched(config, workdir, space, arch, float(final_temperature))


def validity_sample(config, count: int) -> list[int]:
  """Which of ``count`` distinct scored candidates the one-shot validity check fine-tunes
  (``method.validity_candidates`` of them): a seeded sample of all, not of the front."""
  k = min(int(config.method.validity_candidates), count)
  rng = np.random.default_rng(int(config.seed) + 7919)
  return sorted(rng.choice(count, size=k, replace=False).tolist())


def _scored_genotype(config, workdir: Path) -> Genotype:
  t0 = time.time()
  run, state = load_search_state(config, workdir)
  weights = (run.setup.graphdef, state.params, state.arch, state.stats)
  space, m = run.space, config.method
  multicore = build.multicore_accelerator(config) is not None
  # Candidates leave at the search thresholds (not the thresholds a dnas search learns).
  ctx = dataclasses.replace(run.ctx, thresholds=jnp.full(
      (len(space.branches),), config.exits.search_threshold, jnp.float32))
  n = m.score_samples or len(run.data.val.labels)
  if run.cache is not None:   # a frozen backbone: candidates are scored on cached features
    val = run.cache.val
    images = (tuple(np.asarray(f[:n], np.float32) for f in val.features),
              np.asarray(val.logits[:n], np.float32))
  else:
    images = run.data.val.images[:n]
  scorer = GenotypeScorer(weights, lambda x: one_hot_arch(space, decode(space, x, multicore)),
                          images, run.data.val.labels[:n], run.setup.objective,
                          ctx, batch=min(m.population, m.evaluations))
  bounds = encoding_bounds(space, multicore)
  if m.name == "random":
    x, acc, cost = evolution.random_search(scorer, bounds, m.evaluations, config.seed)
  else:
    x, acc, cost = evolution.nsga2(scorer, bounds, m.evaluations, m.population, config.seed)
  # Encodings that differ only in choices of exit-less positions are one genotype.
  genotypes = [decode(space, e, multicore) for e in x]
  unique = list({json.dumps(g.to_json()): i for i, g in enumerate(genotypes)}.values())
  front = [unique[i] for i in evolution.non_dominated(acc[unique], cost[unique])]
  chosen = evolution.pick(acc[front], cost[front], config.loss.target)
  record = dict(method=m.name, supernet=m.supernet, evaluations=int(scorer.calls),
                distinct_genotypes=len(unique), scored_samples=int(n),
                threshold=float(config.exits.search_threshold), objective=config.hw.objective,
                cost="configured objective relative to the static backbone (linear form)",
                target=float(config.loss.target), rule=evolution.PICK_RULE, picked=chosen,
                select_s=round(time.time() - t0, 3),
                front=[dict(encoding=x[i].tolist(), accuracy=float(acc[i]), cost=float(cost[i]),
                            genotype=genotypes[i].to_json()) for i in front])
  if m.validity_candidates > 0:   # fine-tuned later (dnas_ee.stages.validity)
    record["validity_sample"] = [
        dict(accuracy=float(acc[unique[i]]), cost=float(cost[unique[i]]),
             genotype=genotypes[unique[i]].to_json())
        for i in validity_sample(config, len(unique))]
  (workdir / RESULT_FILE).write_text(json.dumps(record, indent=1))
  return genotypes[front[chosen]]
