"""Derive what was priced: the ``dnas`` genotype from a finished search, and how far its
cost is from the cost the search priced at its end.

``derive_searched`` runs ``space.genotype.derive_genotype`` with the run's priced
metric as the path cost of an exit (``derive.ops='priced'`` breaks an undecided slot's
tie by it), and records in the genotype's derivation ``priced``:

- ``path_ratio``: per exit of the derived network (early exits, then the final one),
  its priced metric over the same exit's in the relaxed network at the search's final
  temperature (``cost.search_cost.exit_costs``: op, bit and gate mixtures);
- ``ratio``: ``cost(derived) / cost(relaxed at the end)`` at the exit rates the search
  logged last (``leave`` in ``search_metrics.jsonl``, a mean over its last validation
  batch). The derived network is given the conditional exit rate each kept exit had in
  the relaxed one (``leave_i / (reach_i g_i)``); a dropped exit passes its samples on.
  EDP is linear in the exit probabilities, so the relaxed figure is exact for that batch;
  the derived one assumes the exits' rates do not change with the derivation.
"""
from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dnas_ee.cost.search_cost import exit_costs as relaxed_exit_costs
from dnas_ee.models.supernet import ArchProbs
from dnas_ee.space.genotype import Genotype, derive_genotype, genotype_space
from dnas_ee.train import build


def _priced_metric(spec, ctx):
  """``[..., M] -> [...]``: the searched metric of cost vectors (EDP or the weighted metrics)."""
  if spec.objective == "edp":
    lat, en = spec.metrics.index("latency_s"), spec.metrics.index("energy_j")
    return lambda costs: np.asarray(costs)[..., lat] * np.asarray(costs)[..., en]
  weights = np.asarray(ctx.metric_weights, np.float64)
  return lambda costs: np.asarray(costs) @ weights


def relaxed_architecture_at(arch: dict, temperature: float) -> ArchProbs:
  """The relaxed architecture of ``search_arch.json``'s logits at ``temperature``."""
  soft = lambda logits: jax.nn.softmax(jnp.asarray(logits, jnp.float32) / temperature, axis=-1)
  beta = jnp.asarray(arch["exit_logits"], jnp.float32)
  alloc = jnp.asarray(arch.get("alloc_logits") or np.zeros(beta.shape), jnp.float32)
  ops = jnp.asarray(arch["op_logits"], jnp.float32)
  return ArchProbs(gates=jax.nn.sigmoid(beta / temperature),
                   ops=soft(ops) if ops.size else ops,
                   backbone_bits=soft(arch["backbone_bit_logits"]),
                   branch_bits=soft(arch["branch_bit_logits"]) if beta.size else jnp.zeros(
                       (0, np.shape(arch["backbone_bit_logits"])[-1])),
                   parallel=jax.nn.sigmoid(alloc))


def last_exit_rates(workdir) -> np.ndarray | None:
  """The mean exit probabilities the search logged last (``search_metrics.jsonl``), or None."""
  path = Path(workdir) / "search_metrics.jsonl"
  if not path.exists():
    return None
  leave = None
  for line in path.read_text().splitlines():
    record = json.loads(line)
    if "leave" in record:
      leave = record["leave"]
  return None if leave is None else np.asarray(leave, np.float64)


def derived_exit_rates(leave: np.ndarray, gates: np.ndarray, kept: list[int]) -> np.ndarray:
  """Exit rates of the derived network (its kept early exits, then the final one) from the
  relaxed network's (module docstring)."""
  reach = np.cumsum(leave[::-1])[::-1]   # reach_i = sum_{j >= i} leave_j
  out, alive = [], 1.0
  for i in kept:
    rate = float(np.clip(leave[i] / max(reach[i] * gates[i], 1e-12), 0.0, 1.0))
    out.append(alive * rate)
    alive *= 1.0 - rate
  return np.asarray(out + [alive])


def priced_record(spec, ctx, derived_costs, arch: dict, temperature: float,
                  genotype: Genotype, leave: np.ndarray | None) -> dict:
  """``priced`` of the derivation record (module docstring); ``derived_costs``:
  ``genotype -> [E, M]`` cost of leaving at each exit of a derived network."""
  metric = _priced_metric(spec, ctx)
  probs = relaxed_architecture_at(arch, temperature)
  relaxed = metric(np.asarray(relaxed_exit_costs(spec, ctx, probs), np.float64))   # [P + 1]
  derived = metric(derived_costs(genotype))
  kept = [spec.positions.index(g.position) for g in genotype.exits]
  record = dict(metric="edp" if spec.objective == "edp" else f"weighted {spec.objective}",
                path_ratio=[round(float(d / r), 6)
                            for d, r in zip(derived, list(relaxed[kept]) + [relaxed[-1]])])
  if leave is not None and leave.shape[0] == relaxed.shape[0]:
    rates = derived_exit_rates(leave, np.asarray(probs.gates, np.float64), kept)
    relaxed_cost, derived_cost = float(leave @ relaxed), float(rates @ derived)
    record.update(ratio=round(derived_cost / relaxed_cost, 6), relaxed=relaxed_cost,
                  derived=derived_cost, exit_rates=[round(float(x), 6) for x in leave],
                  derived_exit_rates=[round(float(x), 6) for x in rates])
  return record


def derive_searched(config, workdir, space, arch: dict, temperature: float) -> Genotype:
  """The ``dnas`` genotype of the learned architecture ``arch`` (``search_arch.json``),
  derived by ``config.derive``, with the ``priced`` record (module docstring)."""
  source = build.build_cost_source(config, space)
  spec, ctx = build.build_objective(config, space, source)
  metric = _priced_metric(spec, ctx)

  def derived_costs(genotype: Genotype) -> np.ndarray:   # the run's cost model, cores included
    return build.network_costs(config, genotype_space(genotype), source).cumulative

  def path_cost(genotype: Genotype, j: int) -> float:
    return float(metric(derived_costs(genotype)[j]))

  d = config.derive
  genotype = derive_genotype(
      space, arch["exit_logits"], arch["op_logits"], arch["backbone_bit_logits"],
      arch["branch_bit_logits"], alloc_logits=arch.get("alloc_logits"), rule=d.rule,
      top_k=d.top_k, thresholds=arch.get("exit_thresholds"), temperature=temperature,
      ops=d.ops, path_cost=path_cost, exits=d.exits, hand_placed_ops=config.method.branch_ops)
  record = priced_record(spec, ctx, derived_costs, arch, temperature, genotype,
                         last_exit_rates(workdir))
  return Genotype(genotype.backbone, genotype.exits, genotype.backbone_bits, genotype.edge_bits,
                  derivation=dict(genotype.derivation, priced=record))
