"""Smoke sweep: digits at the test size (``digits.py:tiny``), 2 seeds x every method.

    dnas-ee sweep --sweep experiments/sweeps/smoke.py --workdir runs/smoke
    dnas-ee table --workdir runs/smoke

random and evolutionary score 60 candidates each (NSGA-II: population 12, 5
generations) with a supernet trained with its architecture frozen (uniform).
"""


def get_sweep():
  return dict(
      configs={"digits tiny": "experiments/configs/digits.py:tiny"},
      overrides=["--config.method.evaluations=60", "--config.method.population=12"],
      settings={"default": []},
      methods={"static": [], "hand_placed": [], "random": [], "evolutionary": [], "dnas": []},
      seeds=(0, 1),
      cost="edp")
