"""The sweep table's statistics, member naming, and the baselines' search (no training)."""
import json
import math

import numpy as np
from hypothesis import given, settings, strategies as st

from support.sweep import tiny_space
from dnas_ee.methods import check_genotype, decode, encoding_bounds
from dnas_ee.methods import evolution
from dnas_ee.sweep import aggregate, spread, sweep_members
from dnas_ee.sweep.spec import load_sweep
from dnas_ee.sweep.table import markdown, to_csv

SPACE = tiny_space()


def test_spread_matches_a_hand_computation():
  values = [98.0, 99.0, 97.0]
  s = spread(values)
  mean = 98.0
  std = math.sqrt(((0.0) ** 2 + 1.0 ** 2 + 1.0 ** 2) / 2)   # sample std, ddof=1: 1.0
  half = 4.302652729911275 * std / math.sqrt(3)              # t(0.975, 2) = 4.3027
  assert s["n"] == 3 and math.isclose(s["mean"], mean) and math.isclose(s["std"], std)
  assert math.isclose(s["lo"], mean - half) and math.isclose(s["hi"], mean + half)
  one = spread([5.0])
  assert one["n"] == 1 and one["mean"] == 5.0 and math.isnan(one["std"])


def test_table_groups_members_and_reports_the_interval():
  def row(method, seed, acc):
    return dict(config="c", setting="default", method=method, seed=seed,
                summary=dict(early_exit=dict(accuracy=acc, macs=1000.0), static=dict(accuracy=0.9),
                             search_s=2.0))
  rows = [row("random", 0, 0.5), row("random", 1, 0.7), row("static", 0, 0.9),
          dict(config="c", setting="default", method="static", seed=1, summary=None)]
  groups = aggregate(rows)
  assert [g["method"] for g in groups] == ["random", "static"]
  assert math.isclose(groups[0]["accuracy"]["mean"], 60.0)
  assert math.isclose(groups[0]["accuracy"]["std"], math.sqrt(200.0))
  assert groups[1]["seeds"] == [0] and groups[1]["members"] == 2
  text = markdown(groups)
  assert "95% Student-t" in text and "60.00 ± 14.14" in text and "| 1/2 |" in text
  assert "accuracy_ci95_lo" in to_csv(groups).splitlines()[0]


def test_table_csv_has_one_row_per_member_in_si_units(tmp_path):
  import csv
  from dnas_ee.sweep.table import MEMBER_COLUMNS, write_table
  summary = dict(early_exit=dict(accuracy=0.875, macs=2.0e7, latency_s=9.0e-5, energy_j=3.0e-5,
                                 edp=2.7e-9),
                 static=dict(accuracy=0.9), measured=dict(early_exit=dict(median_s=7.5e-4)),
                 search_s=12.5)
  members = [dict(dir="m0", config="c", setting="default", method="dnas", seed=0),
             dict(dir="m1", config="c", setting="default", method="dnas", seed=1)]
  (tmp_path / "m0").mkdir()
  (tmp_path / "m0" / "summary.json").write_text(json.dumps(summary))
  (tmp_path / "sweep.json").write_text(json.dumps(dict(sweep="s.py", cost="edp", members=members)))
  write_table(tmp_path)
  rows = list(csv.DictReader((tmp_path / "table.csv").open()))
  assert tuple(rows[0]) == MEMBER_COLUMNS
  assert [(r["method"], r["seed"], r["dir"]) for r in rows] == [("dnas", "0", "m0"), ("dnas", "1", "m1")]
  got = {k: float(rows[0][k]) for k in MEMBER_COLUMNS[5:]}
  assert got == dict(accuracy=0.875, static_accuracy=0.9, macs=2.0e7, latency_s=9.0e-5,
                     energy_j=3.0e-5, edp=2.7e-9, measured_latency_s=7.5e-4, search_s=12.5)
  assert all(rows[1][k] == "" for k in MEMBER_COLUMNS[5:])     # no summary yet: empty cells
  assert "accuracy_ci95_lo" in (tmp_path / "groups.csv").read_text().splitlines()[0]

  from dnas_ee.sweep.table import export_results
  (tmp_path / "m0" / "genotype.json").write_text("{}")
  (tmp_path / "m0" / "checkpoints").mkdir()
  out = tmp_path / "results"
  assert export_results(tmp_path, out) == 1          # m1 has no summary yet
  assert sorted(p.name for p in (out / "members" / "m0").iterdir()) == ["genotype.json",
                                                                         "summary.json"]
  assert (out / "table.md").read_text() == (tmp_path / "table.md").read_text()
  assert (out / "pareto.png").exists() and not (out / "members" / "m1").exists()


def test_changed_member_config_gets_a_new_run_dir(tmp_path):
  sweep_file = tmp_path / "s.py"
  body = ("def get_sweep():\n  return dict(configs={{'d': 'experiments/configs/digits.py'}}, "
          "methods=['static', 'random'], seeds=(0, 1), overrides={})\n")
  sweep_file.write_text(body.format([]))
  first = sweep_members(load_sweep(sweep_file))
  assert len(first) == 4 and len({m.dir_name for m in first}) == 4
  assert first[0].dir_name.startswith("d_default_static_s0-")
  sweep_file.write_text(body.format(["--config.retrain.steps=7"]))
  second = sweep_members(load_sweep(sweep_file))
  assert not {m.dir_name for m in first} & {m.dir_name for m in second}


class _FakeScorer:
  """Accuracy and cost as fixed functions of the encoding (no network)."""

  def __init__(self, bounds):
    rng = np.random.default_rng(0)
    self.wa, self.wc = rng.normal(size=len(bounds)), rng.uniform(size=len(bounds))
    self.calls = 0

  def __call__(self, x):
    x = np.asarray(x, float)
    self.calls += len(x)
    return 1 / (1 + np.exp(-x @ self.wa / 4)), x @ self.wc / 10


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 1000), st.booleans(), st.sampled_from(["random", "nsga2"]))
def test_baselines_return_valid_genotypes_and_a_non_dominated_set(seed, multicore, method):
  bounds = encoding_bounds(SPACE, multicore)
  scorer = _FakeScorer(bounds)
  if method == "random":
    x, acc, cost = evolution.random_search(scorer, bounds, 24, seed)
  else:
    x, acc, cost = evolution.nsga2(scorer, bounds, 24, 8, seed)
  assert len(x) >= 8 and ((x >= 0) & (x < bounds)).all()
  for e in x:
    check_genotype(SPACE, decode(SPACE, e, multicore))
  front = evolution.non_dominated(acc, cost)
  for i in front:      # no candidate evaluated beats a member of the front in both objectives
    better = (acc >= acc[i]) & (cost <= cost[i]) & ((acc > acc[i]) | (cost < cost[i]))
    assert not better.any()
  chosen = evolution.pick(acc[front], cost[front], 0.5)
  within = cost[front] <= 0.5
  if within.any():
    assert acc[front][chosen] == acc[front][within].max()
  else:
    assert cost[front][chosen] == cost[front].min()
