"""The derive stage: the run's discrete genotype, from its method (``genotype.json``).

``dnas`` derives it from the learned architecture; the other methods produce it their
own way (``dnas_ee.methods.stage``, the registry of methods).
"""
from __future__ import annotations

import time
from pathlib import Path

from dnas_ee.methods.stage import select_genotype
from dnas_ee.space.genotype import Genotype
from dnas_ee.stages.timing import record_time


def derive(config, workdir) -> Genotype:
  """Writes and returns the run's ``genotype.json``."""
  return select_genotype(config, Path(workdir))


def derive_stage(config, workdir) -> Genotype:
  """The ``derive`` stage of ``dnas-ee run``: a first derivation's wall-clock (a scored
  method's candidate selection) goes to ``timing.json``."""
  fresh, t0 = not (Path(workdir) / "genotype.json").exists(), time.time()
  genotype = derive(config, workdir)
  if fresh:
    record_time(workdir, "derive_s", time.time() - t0)
  return genotype
