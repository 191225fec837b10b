"""Configs: loading, overrides, unknown keys with suggestions, resolved config round trip."""
from pathlib import Path

import pytest

from dnas_ee.config import (
    ConfigError, apply_overrides, check_keys, config_from_json, load_config_file, save_config)

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"


@pytest.mark.parametrize("name", ["digits.py", "cifar10_mbv2.py", "cifar10_resnet20.py"])
def test_shipped_configs_load_and_build_their_space(name):
  from dnas_ee.train.build import build_space
  config = load_config_file(CONFIGS / name)
  check_keys(config)
  shape = (8, 8, 1) if name == "digits.py" else (32, 32, 3)
  space = build_space(config, shape, 10)
  assert len(space.branches) == len(config.space.exit_positions)


def test_override_sets_typed_values():
  config = load_config_file(CONFIGS / "digits.py")
  apply_overrides(config, ["--config.search.w_lr=0.1", "--config.space.bits=(4, 8)",
                           "--config.data.name=cifar10", "--config.search.steps=7"])
  assert config.search.w_lr == 0.1 and config.space.bits == (4, 8)
  assert config.data.name == "cifar10" and config.search.steps == 7


def test_unknown_key_names_the_nearest_valid_one():
  config = load_config_file(CONFIGS / "digits.py")
  with pytest.raises(ConfigError, match=r"unknown config key 'search.w_lrr'.*'search.w_lr'"):
    apply_overrides(config, ["--config.search.w_lrr=0.1"])
  with pytest.raises(ConfigError, match=r"unknown config key 'serch.steps'.*'search.steps'"):
    apply_overrides(config, ["--config.serch.steps=3"])


def test_wrong_type_is_a_clear_error():
  config = load_config_file(CONFIGS / "digits.py")
  with pytest.raises(ConfigError, match="search.steps"):
    apply_overrides(config, ["--config.search.steps=fast"])


def test_config_file_with_unknown_key(tmp_path):
  path = tmp_path / "bad.py"
  path.write_text("from dnas_ee.config import base_config\n"
                  "def get_config():\n  c = base_config()\n  c.unlock()\n"
                  "  c.search.warmup_step = 3\n  return c\n")
  with pytest.raises(ConfigError, match="'search.warmup_step'.*'search.warmup_steps'"):
    check_keys(load_config_file(path))


def test_resolved_config_round_trip(tmp_path):
  config = load_config_file(CONFIGS / "cifar10_mbv2.py")
  save_config(config, tmp_path / "config.json")
  again = config_from_json(tmp_path / "config.json")
  assert again.to_dict() == config.to_dict()


def test_missing_config_file():
  with pytest.raises(ConfigError, match="does not exist"):
    load_config_file("experiments/configs/nope.py")
