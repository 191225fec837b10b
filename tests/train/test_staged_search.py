"""Staged searches (search.schedule): exits then bits, bits then exits, each second stage
holding the first stage's choice exactly; and the key's arrival renames no saved run."""
import json

import jax
import numpy as np
import pytest
from flax import nnx

from support.runs import warm_config
from dnas_ee.config import ConfigError, apply_overrides, base_config
from dnas_ee.space.genotype import Genotype
from dnas_ee.stages.derive import derive_stage
from dnas_ee.stages.search import FIRST_STAGE_DIR, search_stage
from dnas_ee.train.setup import PINNED_LOGIT

# top_k keeps one exit whatever a 24-step search learns, so the pinned exit is a real one.
ONE_EXIT = ("--config.derive.rule='top_k'", "--config.derive.top_k=1")


def _staged(config, workdir):
  """(first stage's genotype, final genotype, final search_arch.json) of a staged search."""
  search_stage(config, workdir, progress=False)
  final = derive_stage(config, workdir)
  first = Genotype.load(workdir / FIRST_STAGE_DIR / "genotype.json")
  return first, final, json.loads((workdir / "search_arch.json").read_text())


def test_exits_then_bits_keeps_the_exits_its_frozen_first_stage_chose(static_run, tmp_path,
                                                                      feature_cache_dir):
  config = warm_config(static_run, "--config.search.schedule='exits_then_bits'",
                       "--config.search.backbone='frozen'", *ONE_EXIT)
  first, final, arch = _staged(config, tmp_path / "W")
  trained_bits = Genotype.load(static_run / "genotype.json").static.backbone_bits
  assert first.backbone_bits == trained_bits   # the exit stage ran at the backbone's bits
  assert first.exits and final.exits == first.exits   # positions, ops and branch bits
  # The pinned leaves never moved in the second stage: every gate at +-30, ops one-hot.
  np.testing.assert_array_equal(np.abs(arch["exit_logits"]), PINNED_LOGIT)
  assert set(np.unique(arch["op_logits"])) == {0.0, PINNED_LOGIT}
  # ...while the backbone's bits were searched (not pinned) in it.
  assert not set(np.unique(arch["backbone_bit_logits"])) <= {0.0, PINNED_LOGIT}


def test_bits_then_exits_keeps_the_bits_its_first_stage_chose(static_run, tmp_path):
  config = warm_config(static_run, "--config.search.schedule='bits_then_exits'", *ONE_EXIT)
  first, final, arch = _staged(config, tmp_path / "W")
  assert first.exits == ()   # the bit stage searched a space without exits
  assert final.backbone_bits == first.backbone_bits and final.exits
  assert set(np.unique(arch["backbone_bit_logits"])) == {0.0, PINNED_LOGIT}
  saved = json.loads((tmp_path / "W" / FIRST_STAGE_DIR / "config.json").read_text())
  assert saved["space"]["exit_positions"] == [] and saved["search"]["schedule"] == "joint"


def test_carry_weights_copies_the_parts_both_supernets_have():
  from dnas_ee.models.supernet import Supernet
  from dnas_ee.train import build
  from dnas_ee.train.setup import carry_weights
  config = base_config()
  with_exits = build.build_space(config, (8, 8, 1), 10)
  apply_overrides(config, ["--config.space.exit_positions=()"])
  without = build.build_space(config, (8, 8, 1), 10)
  source, target = Supernet(without, rngs=nnx.Rngs(1)), Supernet(with_exits, rngs=nnx.Rngs(2))
  branches_before = jax.tree.map(np.array, nnx.state(target.branches))
  carry_weights(source, target)
  for part in ("stem", "blocks", "head"):
    jax.tree.map(np.testing.assert_array_equal, nnx.state(getattr(target, part)),
                 nnx.state(getattr(source, part)))
  # The source has no branches: the target keeps its own.
  jax.tree.map(np.testing.assert_array_equal, nnx.state(target.branches), branches_before)


@pytest.mark.parametrize("overrides, names", [
    (["--config.search.schedule='bits_first'"], "search.schedule"),
    (["--config.search.schedule='exits_then_bits'", "--config.method.name='random'"],
     "method.name"),
    (["--config.search.schedule='exits_then_bits'", "--config.space.bits=(8,)"], "space.bits"),
    (["--config.search.schedule='bits_then_exits'", "--config.search.backbone='frozen'",
      "--config.init.backbone='.'"], "search.backbone='train'"),
])
def test_a_schedule_that_cannot_run_is_one_clear_error(overrides, names):
  from dnas_ee.train.setup import check_backbone_settings
  config = base_config()
  apply_overrides(config, overrides)
  with pytest.raises(ConfigError, match=names.replace(".", r"\.").replace("(", r"\(")):
    check_backbone_settings(config)


def test_the_joint_default_leaves_saved_run_names_as_they_were():
  """search.schedule and method.validity_candidates arrived after run dirs were named by
  config_hash: at their defaults they are no part of a config's identity (a sweep member
  keeps its dir, a shared search its key)."""
  from dnas_ee.stages import run_config
  config = base_config()
  plain = run_config._plain(config)
  for added in ("search.schedule", "method.validity_candidates"):
    del plain[added]
  import hashlib
  before = hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:8]
  assert run_config.config_hash(config) == before
  assert "search.schedule" not in run_config.keys_first_affecting(config, "search")
  apply_overrides(config, ["--config.search.schedule='exits_then_bits'"])
  assert run_config.config_hash(config) != before
