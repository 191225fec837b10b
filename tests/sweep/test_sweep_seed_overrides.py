"""``{seed}`` in a sweep override is the member's seed (one trained backbone per seed)."""
from dnas_ee.sweep.spec import load_sweep, sweep_members


def test_seed_placeholder_is_the_members_seed(tmp_path):
  sweep_file = tmp_path / "seeds.py"
  sweep_file.write_text(
      "def get_sweep():\n"
      "  return dict(configs={'digits': 'experiments/configs/digits.py'},\n"
      "              overrides=[\"--config.init.backbone='runs/backbone_s{seed}'\"],\n"
      "              methods={'static': []}, seeds=(0, 2))\n")
  members = sweep_members(load_sweep(sweep_file))
  assert [m.config.init.backbone for m in members] == ["runs/backbone_s0", "runs/backbone_s2"]
  assert [m.config.seed for m in members] == [0, 2]
