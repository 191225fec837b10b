"""The static backbone is trained once per seed and shared: same weights as training it in
the run dir, one training fewer per member, a shared dir of other inputs refused."""
import json

import jax
import numpy as np
import pytest

from support.sweep import tiny_config
from dnas_ee import pipeline
from dnas_ee.stages import shared_training as shared
from dnas_ee.stages.run_dir import load_trained, network_space
from dnas_ee.space.genotype import Genotype
from dnas_ee.train import loop


def _count_fits(monkeypatch):
  names = []
  fit = loop.fit

  def counting(*args, **kwargs):
    names.append(kwargs["name"])
    return fit(*args, **kwargs)
  monkeypatch.setattr(loop, "fit", counting)
  return names


def _params(config, workdir, which):
  _, _, state = load_trained(config, workdir, which)
  return [np.asarray(x) for x in jax.tree.leaves(state.params)]


@pytest.mark.slow
def test_static_backbone_trained_once_and_equal_to_a_member_trained_alone(tmp_path, monkeypatch):
  static = tiny_config("--config.method.name='static'")
  hand = tiny_config("--config.method.name='hand_placed'")
  for name, config in (("static", static), ("hand", hand), ("alone", hand)):
    pipeline.run(config, tmp_path / name, stages=("search", "derive"), progress=False)
  fits = _count_fits(monkeypatch)
  shared_root = tmp_path / "shared"
  pipeline.retrain(static, tmp_path / "static", shared_dir=shared_root, progress=False)
  assert fits == ["retrain early_exit (shared)"]       # its early-exit network is the static one
  pipeline.retrain(hand, tmp_path / "hand", shared_dir=shared_root, progress=False)
  assert fits[1:] == ["retrain early_exit"]           # the static reference is copied
  pipeline.retrain(hand, tmp_path / "alone", progress=False)
  assert fits[2:] == ["retrain early_exit", "retrain static"]

  alone = _params(hand, tmp_path / "alone", "static")
  for workdir, which in ((tmp_path / "static", "early_exit"), (tmp_path / "static", "static"),
                         (tmp_path / "hand", "static")):
    for a, b in zip(_params(hand, workdir, which), alone, strict=True):
      np.testing.assert_array_equal(a, b)
  source = json.loads((tmp_path / "hand" / "retrain_static_source.json").read_text())
  assert source["shared_dir"].startswith(str(shared_root))
  assert (tmp_path / "hand" / "retrain_static_metrics.jsonl").exists()

  # Rerun: nothing is trained again.
  pipeline.retrain(hand, tmp_path / "hand", shared_dir=shared_root, progress=False)
  assert len(fits) == 4


def test_training_inputs_ignore_the_method_and_see_the_retraining(tmp_path):
  static = tiny_config("--config.method.name='static'")
  hand = tiny_config("--config.method.name='hand_placed'", "--config.calibrate.mode='budget'")
  from support.sweep import tiny_space
  from dnas_ee.methods.stage import static_genotype
  space = network_space(static_genotype(static, tiny_space(static)), "static")
  key = lambda c: shared.training_key(shared.training_inputs(c, space))
  assert key(static) == key(hand)
  assert key(static) != key(tiny_config("--config.retrain.lr=0.01"))
  assert key(static) != key(tiny_config("--config.seed=1"))
  assert key(static) != key(tiny_config("--config.data.augment_pad=0"))

  home = shared.shared_dir_for(tmp_path, shared.training_inputs(static, space))
  record = json.loads((home / shared.RECORD).read_text())
  record["seed"] = 7
  (home / shared.RECORD).write_text(json.dumps(record))
  with pytest.raises(ValueError, match="other training inputs"):
    shared.shared_dir_for(tmp_path, shared.training_inputs(static, space))


def test_spaces_of_a_static_genotype_are_equal():
  from support.sweep import tiny_space
  from dnas_ee.methods.stage import static_genotype
  config = tiny_config("--config.method.name='static'")
  genotype = static_genotype(config, tiny_space(config))
  assert isinstance(genotype, Genotype) and not genotype.exits
  assert network_space(genotype, "early_exit") == network_space(genotype, "static")


@pytest.mark.slow
def test_one_search_for_members_that_differ_after_it(tmp_path, monkeypatch):
  fits = _count_fits(monkeypatch)
  shared_root = tmp_path / "shared"
  configs = {"a": tiny_config(), "b": tiny_config("--config.retrain.distill_weight=0.0"),
             "random": tiny_config("--config.method.name='random'"),
             "evolutionary": tiny_config("--config.method.name='evolutionary'")}
  for name, config in configs.items():
    pipeline.run(config, tmp_path / name, stages=("search", "derive"), shared_dir=shared_root,
                 progress=False)
  assert fits == ["search", "search"]      # one dnas search, one frozen supernet
  arch = lambda name: (tmp_path / name / "search_arch.json").read_text()
  assert arch("a") == arch("b") and arch("random") == arch("evolutionary") != arch("a")
  for name in configs:
    timing = json.loads((tmp_path / name / "timing.json").read_text())
    assert timing["search_s"] > 0
    assert (tmp_path / name / "genotype.json").exists()
    assert (tmp_path / name / "search_source.json").exists()
    assert (tmp_path / name / "checkpoints" / "search" / "16").is_dir()
  assert sorted(p.name.split("-")[0] for p in shared_root.iterdir()) == ["search", "search"]
