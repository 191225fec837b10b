"""Config -> search space, cost source, cost context, optimizers (host side, once)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dnas_ee.cost import ShapeCosts, build_cost_tables, static_cost
from dnas_ee.cost.network import NetworkCosts, network_costs as derived_network_costs
from dnas_ee.cost.tables import CombinedCosts, CostSource
from dnas_ee.relax import make_schedule
from dnas_ee.space.backbones import build_backbone
from dnas_ee.space.space import SearchSpace, make_search_space
from dnas_ee.train.objective import CostContext, ObjectiveSpec, metric_weights


def build_space(config: ml_collections.ConfigDict, image_shape, num_classes: int) -> SearchSpace:
  backbone = build_backbone(config.backbone.name, image_shape, num_classes,
                            **config.backbone.options.to_dict())
  s = config.space
  return make_search_space(backbone, exit_positions=s.exit_positions, branch_ops=s.branch_ops,
                           branch_depth=s.branch_depth, branch_resolutions=s.branch_resolutions,
                           bits=s.bits, edge_bits=s.edge_bits)


def build_cost_source(config: ml_collections.ConfigDict, space: SearchSpace) -> CostSource:
  """MACs and bytes from shapes; latency and energy from the accelerator's LUT if one is set."""
  if not config.hw.accelerator:
    return ShapeCosts()
  from dnas_ee.hw import lut_cost_source  # the hardware models are optional
  return CombinedCosts(ShapeCosts(), lut_cost_source(config.hw.accelerator, config.hw.lut, space))


def schedule_from(cfg: ml_collections.ConfigDict, total_steps: int):
  steps = cfg.steps or total_steps
  return make_schedule(cfg.kind, cfg.start, cfg.end, steps, cfg.delay)


def exit_weight_vector(weights, num_exits: int) -> np.ndarray:
  if not weights:
    return np.full(num_exits, 1.0 / num_exits, np.float32)
  if len(weights) != num_exits:
    raise ValueError(f"loss.exit_weights needs {num_exits} entries (early exits + final), "
                     f"got {len(weights)}")
  return np.asarray(weights, np.float32)


def multicore_accelerator(config):
  """The accelerator if the config targets a multi-core one, else None."""
  if not config.hw.accelerator:
    return None
  from dnas_ee.hw import is_measured_device, load_accelerator
  if is_measured_device(config.hw.accelerator):   # a measured JAX device: one core, no description
    return None
  acc = load_accelerator(config.hw.accelerator)
  return acc if acc.num_cores > 1 else None


def build_objective(config, space: SearchSpace, source: CostSource):
  """(ObjectiveSpec, CostContext) of the search."""
  tables = build_cost_tables(space, source)
  acc = multicore_accelerator(config)
  p, nb = len(space.branches), space.num_bits
  transfer_latency, transfer_energy = np.zeros((p, nb)), np.zeros((p, nb))
  if acc is not None:
    from dnas_ee.hw import transfer_tables
    transfer_latency, transfer_energy = transfer_tables(space, acc)
  total = config.search.steps
  lam = schedule_from(config.loss.lam, total)
  spec = ObjectiveSpec(
      positions=tuple(b.position for b in space.branches), confidence=config.exits.confidence,
      task=config.loss.task, weight_task=config.loss.weight_task,
      thresholds_as_placed=config.exits.thresholds_as_placed,
      aux_weight=config.loss.aux_weight, penalty=config.loss.penalty,
      target=config.loss.target, objective=config.hw.objective, metrics=tables.metrics, lam=lam,
      multicore=acc is not None)
  reference = static_cost(tables, bit_index=-1)   # backbone at the widest candidate width
  weights = metric_weights(config.hw.objective, tables.metrics, config.loss.metric_weights.to_dict())
  thresholds = np.full(len(space.branches), config.exits.search_threshold, np.float32)
  ctx = CostContext(tables=tables, reference=jnp.asarray(reference),
                    metric_weights=jnp.asarray(weights), thresholds=jnp.asarray(thresholds),
                    exit_weights=jnp.asarray(exit_weight_vector(config.loss.exit_weights,
                                                                space.num_exits)),
                    transfer_latency=jnp.asarray(transfer_latency, jnp.float32),
                    transfer_energy=jnp.asarray(transfer_energy, jnp.float32))
  return spec, ctx


def weight_optimizer(lr: float, momentum: float, weight_decay: float, steps: int,
                     grad_clip: float = 0.0) -> optax.GradientTransformation:
  """SGD with momentum and a cosine schedule (DARTS's weight optimizer)."""
  parts = [optax.clip_by_global_norm(grad_clip)] if grad_clip else []
  parts += [optax.add_decayed_weights(weight_decay),
            optax.sgd(optax.cosine_decay_schedule(lr, max(steps, 1)), momentum=momentum)]
  return optax.chain(*parts)


def _arch_leaf_mask(names: tuple[str, ...]):
  """A mask function: True for the architecture leaves whose path names one of ``names``."""
  def mask(arch):
    return jax.tree_util.tree_map_with_path(
        lambda path, _: any(getattr(k, "key", getattr(k, "name", None)) in names for k in path),
        arch)
  return mask


def arch_optimizer(config, pinned: tuple[str, ...] = ()) -> optax.GradientTransformation:
  """Adam with DARTS's betas; weight decay on the op, bit and allocation logits only;
  exit gates step ``search.gate_lr_scale`` times faster.

  Exit gates and thresholds get no weight decay: it would pull every gate back to
  ``beta = 0``, exactly the derive boundary. With ``exits.learn_thresholds=False``
  the thresholds keep their initial value (``exits.search_threshold``). ``pinned``
  leaves (a frozen backbone's widths, a staged search's earlier choice) keep theirs.
  """
  s = config.search
  not_decayed = _arch_leaf_mask(("exit_logits", "exit_thresholds"))
  parts = [optax.add_decayed_weights(s.a_weight_decay,
                                     mask=lambda a: jax.tree.map(lambda m: not m, not_decayed(a))),
           optax.adam(s.a_lr, b1=s.a_b1, b2=s.a_b2),
           # Gates may step gate_lr_scale x faster than the op logits. Default 1: at 5 the
           # digits gates closed right after the warm-up, while the uniform op mixture
           # still priced every branch at its average (expensive) op.
           optax.masked(optax.scale(s.gate_lr_scale), _arch_leaf_mask(("exit_logits",)))]
  if not config.exits.learn_thresholds:
    parts.append(optax.masked(optax.set_to_zero(), _arch_leaf_mask(("exit_thresholds",))))
  if pinned:
    parts.append(optax.masked(optax.set_to_zero(), _arch_leaf_mask(tuple(pinned))))
  return optax.chain(*parts)


def transfer_costs(config, space: SearchSpace):
  """``(latency [P, nb], energy [P, nb])`` of sending each branch's input to another core
  of the configured multi-core accelerator, or None (one core, or no branch)."""
  acc = multicore_accelerator(config)
  if acc is None or not space.branches:
    return None
  from dnas_ee.hw import transfer_tables
  return transfer_tables(space, acc)


def network_costs(config, space: SearchSpace, source: CostSource | None = None) -> NetworkCosts:
  """``NetworkCosts`` of the derived network ``space`` under the
  run's cost model (``source``: the run's cost source if already built, so a LUT is
  loaded once)."""
  source = source or build_cost_source(config, space)
  return derived_network_costs(space, source, transfer_costs(config, space))


def network_exit_costs(config, space: SearchSpace, source: CostSource | None = None):
  """([E, M] cost of leaving at each exit of a derived network, metric names).

  ``source``: the run's cost source, if the caller already built it (a LUT is then
  loaded once). See ``dnas_ee.cost.network.exit_costs`` (multi-core critical path
  included).
  """
  costs = network_costs(config, space, source)
  return costs.cumulative, costs.metrics


# The exit branches' convolution (``models.layers.CONV_IMPLS``): on a frozen backbone's
# cached features the branches are the whole step and steps outnumber compiles, so the form
# with no slow XLA:CPU kernel ('windows': the step 0.58x, the compile 1.19x on ResNet-20,
# docs/benchmarks.md); elsewhere the shorter compile ('switched').
BRANCH_CONV = {True: "windows", False: "switched"}


def frozen_network(config) -> bool:
  """Whether the derived networks keep the trained backbone as it is (weights and bits):
  a joint frozen search. A staged search changes bits in one stage, so its networks train."""
  return config.search.backbone == "frozen" and config.search.schedule == "joint"


def retrain_setup(config, space: SearchSpace, seed: int, backbone=None):
  """(``TrainSetup``, fresh ``TrainState``) of a derived network's (re)training.

  ``backbone``: a ``TrainedBackbone`` (``dnas_ee.train.warm_start``) whose stem, blocks
  and head the network starts from (``init.backbone``: fine-tuning, not training from
  scratch); None starts from the seed's random initialization.
  """
  from flax import nnx
  from dnas_ee.models.supernet import Supernet
  from dnas_ee.train import retrain as rt
  r = config.retrain
  model = Supernet(space, rngs=nnx.Rngs(seed), branch_grad_scale=r.exit_grad_scale,
                   branch_conv=BRANCH_CONV[frozen_network(config)])
  if backbone is not None:
    backbone.copy_into(model)
  tx = weight_optimizer(r.lr, r.momentum, r.weight_decay, r.steps, config.search.grad_clip)
  graphdef, arch, state = rt.init_train_state(model, tx, seed)
  weights = (r.exit_weight,) * len(space.branches) + (1.0,)
  setup = rt.TrainSetup(graphdef, arch, tx, weights, r.distill_weight, r.distill_temperature,
                        config.data.augment_pad, config.data.augment_flip)
  return setup, state
