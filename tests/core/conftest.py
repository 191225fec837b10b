import pytest

from core_support import ROOT, tiny_overrides


@pytest.fixture
def tiny_config():
  from dnas_ee.config import apply_overrides, load_config_file
  config = load_config_file(ROOT / "experiments" / "configs" / "digits.py")
  apply_overrides(config, tiny_overrides())
  return config
