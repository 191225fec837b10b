"""Searching from a trained backbone: warm starts, the frozen backbone and its feature cache."""
import json

import jax
import numpy as np
import pytest
from flax import nnx

from support.runs import ONE_EXIT_SPACE, tiny_overrides, warm_config
from dnas_ee.cli import main
from dnas_ee.config import ConfigError, apply_overrides, base_config


_config = warm_config


def _flat(state):
  return {jax.tree_util.keystr(p): np.asarray(v)
          for p, v in jax.tree_util.tree_flatten_with_path(state)[0]}


def test_supernet_at_the_static_architecture_reproduces_the_backbone(static_run):
  from dnas_ee.models.supernet import relaxed_architecture
  from dnas_ee.relax import Relaxation
  from dnas_ee.stages.run_dir import exit_logits, load_run_config, load_trained
  from dnas_ee.data import load_dataset
  from dnas_ee.train.setup import prepare_search
  config = _config(static_run)
  run = prepare_search(config)
  images = load_dataset(config.data).test.images[:64]
  # The static one-hot architecture: every gate closed, every block at its trained 8 bits.
  model = nnx.merge(run.setup.graphdef, run.state.params, run.state.arch, run.state.stats)
  bits = model.backbone_bit_logits[...]
  model.backbone_bit_logits[...] = np.where(np.arange(bits.shape[1]) == bits.shape[1] - 1,
                                            30.0, 0.0) * np.ones_like(bits)
  arch = relaxed_architecture(model, Relaxation(hard=True))
  supernet_logits = model(images, arch, train=False)[-1]
  static_config = load_run_config(static_run)
  _, setup, state = load_trained(static_config, static_run, "static")
  static_logits = exit_logits(setup, state, images, 64)[-1]
  np.testing.assert_allclose(np.asarray(supernet_logits), static_logits, rtol=1e-5, atol=1e-5)


def test_a_mismatched_backbone_is_one_clear_error(static_run):
  from dnas_ee.train.setup import prepare_search
  config = _config(static_run, "--config.backbone.options.stage_widths=(8, 16, 32)")
  with pytest.raises(ConfigError, match=r"init.backbone=.*does not match.*blocks/2/bn1/bias: trained \(16,\) vs this network \(32,\)"):
    prepare_search(config)


def test_a_backbone_that_is_not_a_trained_run_is_one_clear_error(tmp_path):
  from dnas_ee.train.warm_start import load_backbone
  with pytest.raises(ConfigError, match="not a trained run dir.*method.name=static"):
    load_backbone(tmp_path)


def test_frozen_search_leaves_the_backbone_bit_identical(static_run, feature_cache_dir):
  from dnas_ee.train.search import jit_search_step
  from dnas_ee.train.setup import prepare_search, search_batches
  config = _config(static_run, "--config.search.backbone='frozen'",
                   "--config.search.warmup_steps=0")
  run = prepare_search(config)
  before_params = _flat(run.state.params)
  before_stats = _flat(run.state.stats)
  before_bits = np.asarray(run.state.arch["backbone_bit_logits"][...])
  step = jit_search_step(run.setup)
  state = jax.tree.map(lambda x: x.copy() if hasattr(x, "copy") else x, run.state)
  for i in range(3):
    state, metrics = step(state, *search_batches(run, config, i), run.ctx)
  after_params, after_stats = _flat(state.params), _flat(state.stats)
  backbone = [k for k in before_params if k.split("'")[1] in ("stem", "blocks", "head")]
  branches = [k for k in before_params if k.split("'")[1] == "branches"]
  assert backbone and branches
  for k in backbone:
    np.testing.assert_array_equal(after_params[k], before_params[k], err_msg=k)
  for k in before_stats:
    if k.split("'")[1] in ("stem", "blocks", "head"):
      np.testing.assert_array_equal(after_stats[k], before_stats[k], err_msg=k)
  assert any(not np.array_equal(after_params[k], before_params[k]) for k in branches)
  np.testing.assert_array_equal(np.asarray(state.arch["backbone_bit_logits"][...]), before_bits)
  assert bool(metrics["finite"])


def test_feature_cache_is_reused_and_invalidated(static_run, feature_cache_dir):
  from dnas_ee.data import load_dataset
  from dnas_ee.data.shapes import dataset_shape
  from dnas_ee.space.genotype import Genotype
  from dnas_ee.train import build
  from dnas_ee.train.feature_cache import feature_cache
  from dnas_ee.train.warm_start import load_backbone
  import dataclasses
  config = _config(static_run)
  backbone = load_backbone(static_run)
  static = Genotype.load(static_run / "genotype.json").static
  space = build.build_space(config, *dataset_shape(config.data))
  data = load_dataset(config.data)
  messages = []
  make = lambda b, d, dc: feature_cache(b, static, space, d, dc, copies=2, augment=(1, False),
                                        log=messages.append)
  first = make(backbone, data, config.data)
  assert len(messages) == 1
  again = make(backbone, data, config.data)
  assert len(messages) == 1 and again.path == first.path       # reused, not recomputed
  # The cached final logits are the static network's, exactly (float32, no rounding).
  from dnas_ee.stages.run_dir import exit_logits, load_run_config, load_trained
  _, setup, state = load_trained(load_run_config(static_run), static_run, "static")
  val_logits = exit_logits(setup, state, data.val.images, 64)[-1]
  np.testing.assert_allclose(np.asarray(first.val.logits), val_logits, rtol=1e-6, atol=1e-6)
  assert first.train.features[0].shape[0] == 2 * len(data.train.labels)   # two views
  # Another backbone (one weight changed) or other data gives another cache.
  parts = dict(backbone.parts)
  changed = dataclasses.replace(backbone, fingerprint=backbone.fingerprint[::-1], parts=parts)
  assert make(changed, data, config.data).path != first.path
  other = config.data.copy_and_resolve_references()
  other.unlock()
  other.seed = 1
  assert make(backbone, data, other).path != first.path
  assert len(messages) == 3


def _frozen_run(static_run, workdir, *overrides):
  """(summary of a frozen run from ``static_run``'s backbone, the static run's summary)."""
  assert main(["run", "--config", "experiments/configs/digits.py", "--workdir", str(workdir),
               "--no-progress", *tiny_overrides(), f"--config.init.backbone='{static_run}'",
               "--config.search.backbone='frozen'", "--config.calibrate.mode='none'",
               *overrides]) == 0
  return (json.loads((workdir / "summary.json").read_text()),
          json.loads((static_run / "summary.json").read_text()))


def test_frozen_run_keeps_the_static_final_exit(static_run, tmp_path, feature_cache_dir):
  workdir = tmp_path / "D"
  summary, static = _frozen_run(static_run, workdir, "--config.loss.lam.end=0.0")
  # The frozen network's static reference is the trained backbone, unchanged.
  assert summary["static"]["accuracy"] == static["static"]["accuracy"]
  from dnas_ee.data import load_dataset
  from dnas_ee.stages.run_dir import exit_logits, load_run_config, load_trained
  config = load_run_config(workdir)
  test = load_dataset(config.data).test
  _, setup, state = load_trained(config, workdir, "early_exit")
  _, s_setup, s_state = load_trained(load_run_config(static_run), static_run, "static")
  final = exit_logits(setup, state, test.images, 64)[-1]
  reference = exit_logits(s_setup, s_state, test.images, 64)[-1]
  # The final exit is the static network's: the same weights and statistics (the program
  # differs, the early-exit network also runs branches, so XLA may round differently).
  np.testing.assert_allclose(final, reference, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(final.argmax(-1), reference.argmax(-1))
  assert summary["early_exit"]["final_exit_accuracy"] == static["static"]["accuracy"]


def test_a_frozen_search_is_evaluated_inherited_as_a_lambda_sweep_does(static_run, tmp_path,
                                                                         feature_cache_dir):
  """The one-shot stage of a lambda sweep (search, derive, inherited) on a frozen backbone
  (experiments/sweeps/lambda_cifar10_frozen.py): its static reference, the supernet with no
  exit, is the trained backbone, so it scores the static network's test accuracy."""
  from dnas_ee.stages.inherited import evaluate_inherited
  from dnas_ee.stages.run_dir import load_run_config
  workdir = tmp_path / "L"
  args = ["--workdir", str(workdir), "--no-progress"]
  assert main(["search", "--config", "experiments/configs/digits.py", *args, *tiny_overrides(),
               *ONE_EXIT_SPACE, f"--config.init.backbone='{static_run}'",
               "--config.search.backbone='frozen'", "--config.space.bits=(8,)",
               "--config.loss.lam.kind='constant'",
               "--config.loss.lam.start=2.0", "--config.loss.lam.end=2.0"]) == 0
  assert main(["derive", *args]) == 0
  result = evaluate_inherited(load_run_config(workdir), workdir)
  static = json.loads((static_run / "summary.json").read_text())["static"]
  assert result["static"]["accuracy"] == pytest.approx(static["accuracy"], abs=1e-9)
  assert result["static"]["exit_rates"][-1] == sum(result["static"]["exit_rates"])
  assert 0.0 <= result["derived"]["accuracy"] <= 1.0 and result["searched_ratio"] > 0


def test_frozen_needs_a_backbone():
  from dnas_ee.train.setup import check_backbone_settings
  config = base_config()
  apply_overrides(config, ["--config.search.backbone='frozen'"])
  with pytest.raises(ConfigError, match="init.backbone"):
    check_backbone_settings(config)
  apply_overrides(config, ["--config.search.backbone='both'"])
  with pytest.raises(ConfigError, match="unknown search.backbone"):
    check_backbone_settings(config)


def test_scoring_on_the_cache_gives_the_static_accuracy_without_exits(static_run,
                                                                       feature_cache_dir):
  """Random/NSGA-II candidates are scored on the cached features: a candidate with no
  exit is the static network, so its score is the static network's val accuracy."""
  from dnas_ee.methods.encoding import decode, encoding_bounds, one_hot_arch
  from dnas_ee.methods.scoring import GenotypeScorer
  from dnas_ee.train.setup import prepare_search
  config = _config(static_run, "--config.search.backbone='frozen'")
  run = prepare_search(config)
  space, val = run.space, run.cache.val
  images = (tuple(np.asarray(f, np.float32) for f in val.features),
            np.asarray(val.logits, np.float32))
  weights = (run.setup.graphdef, run.state.params, run.state.arch, run.state.stats)
  scorer = GenotypeScorer(weights, lambda x: one_hot_arch(space, decode(space, x)), images,
                          run.data.val.labels, run.setup.objective, run.ctx, batch=2)
  bounds = encoding_bounds(space)
  bits = list(space.backbone_bits[0]).index(8)
  no_exit = np.zeros_like(bounds)
  no_exit[len(space.branches) + len(space.branches) * space.depth:][:space.num_blocks] = bits
  every_exit = no_exit.copy()
  every_exit[:len(space.branches)] = 1
  acc, cost = scorer(np.stack([no_exit, every_exit]))
  static_acc = np.mean(np.argmax(np.asarray(val.logits), -1) == run.data.val.labels)
  assert acc[0] == pytest.approx(static_acc, abs=1e-6)
  assert cost[0] == pytest.approx(1.0, rel=1e-5)   # the static network at its own bits
  assert 0.0 <= acc[1] <= 1.0 and np.isfinite(cost[1])


def test_frozen_hand_placed_trains_its_branches_and_keeps_the_backbone(static_run, tmp_path,
                                                                      feature_cache_dir):
  """A frozen run whose network has exits: its branches train on the cache, its static
  network is the backbone (started from the same trained arrays after a donated training)."""
  workdir = tmp_path / "H"
  summary, static = _frozen_run(static_run, workdir, "--config.method.name='hand_placed'")
  assert len(summary["genotype"]["exits"]) == 2
  assert summary["static"]["accuracy"] == static["static"]["accuracy"]
  assert summary["early_exit"]["final_exit_accuracy"] == static["static"]["accuracy"]
  log = [json.loads(l) for l in (workdir / "retrain_early_exit_metrics.jsonl").read_text().splitlines()]
  assert log[-1]["step"] == 24 and all(0.0 <= a <= 1.0 for a in log[-1]["exit_accuracy"])
