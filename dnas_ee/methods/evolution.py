"""Searching the encoding with scored candidates: random search and NSGA-II (pymoo).

Both minimize ``(1 - accuracy, cost)`` of candidates scored by a ``GenotypeScorer``
with the same budget of candidate evaluations, keep the non-dominated set of
every candidate they evaluated, and pick one genotype from it with ``pick``.
"""
from __future__ import annotations

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.problem import Problem
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.optimize import minimize
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

PICK_RULE = ("the most accurate candidate whose cost is within the target (loss.target, as a "
             "fraction of the static backbone's), ties to the cheaper; the cheapest if none is")


def non_dominated(accuracy, cost) -> np.ndarray:
  """Indices of the candidates no other candidate beats in both accuracy and cost."""
  f = np.column_stack([1.0 - np.asarray(accuracy, float), np.asarray(cost, float)])
  if not len(f):
    return np.zeros(0, int)
  return np.sort(NonDominatedSorting().do(f, only_non_dominated_front=True))


def pick(accuracy, cost, target: float) -> int:
  """Index of the chosen candidate (``PICK_RULE``)."""
  accuracy, cost = np.asarray(accuracy, float), np.asarray(cost, float)
  within = np.flatnonzero(cost <= target)
  if not len(within):
    return int(np.argmin(cost))
  return int(within[np.lexsort((cost[within], -accuracy[within]))[0]])


def random_search(scorer, bounds: np.ndarray, evaluations: int, seed: int):
  """``evaluations`` encodings drawn uniformly (each integer independently).

  Returns:
    (encodings [n, V], accuracy [n], cost [n]) of every candidate evaluated.
  """
  rng = np.random.default_rng(seed)
  x = rng.integers(0, np.asarray(bounds)[None, :], size=(int(evaluations), len(bounds)))
  accuracy, cost = scorer(x)
  return x, accuracy, cost


class _GenotypeProblem(Problem):
  """Integer encodings in ``[0, bounds)``; objectives ``(1 - accuracy, cost)``."""

  def __init__(self, scorer, bounds):
    super().__init__(n_var=len(bounds), n_obj=2, xl=np.zeros(len(bounds)),
                     xu=np.asarray(bounds, float) - 1, vtype=int)
    self.scorer, self.seen = scorer, []

  def _evaluate(self, x, out, *args, **kwargs):
    x = np.rint(x).astype(np.int64)
    accuracy, cost = self.scorer(x)
    self.seen.append((x, accuracy, cost))
    out["F"] = np.column_stack([1.0 - accuracy, cost])


def nsga2(scorer, bounds: np.ndarray, evaluations: int, population: int, seed: int):
  """NSGA-II (pymoo) over integer encodings, stopped after ``evaluations`` candidates.

  Integer variables as in pymoo's guide: SBX crossover and polynomial mutation on
  the reals, rounded back (``RoundingRepair``), duplicates eliminated.

  Returns:
    (encodings [n, V], accuracy [n], cost [n]) of every candidate evaluated.
  """
  problem = _GenotypeProblem(scorer, bounds)
  algorithm = NSGA2(pop_size=int(population), sampling=IntegerRandomSampling(),
                    crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                    mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                    eliminate_duplicates=True)
  minimize(problem, algorithm, ("n_eval", int(evaluations)), seed=int(seed), verbose=False)
  x = np.concatenate([s[0] for s in problem.seen])
  return x, np.concatenate([s[1] for s in problem.seen]), np.concatenate([s[2] for s in problem.seen])
