"""Sweeps as data (``experiments/sweeps/*.py``), their runner and their table.

``spec``: the sweep file and its members; ``runner``: every member into its own
run dir, resumable, one after another here or as Ray tasks (``executor``); ``table``:
mean, std and a 95% Student-t interval over seeds, markdown, CSV and a Pareto plot.
One config per run dir: ``dnas_ee.stages.run_config``.
"""
from dnas_ee.sweep.runner import SweepError, run_sweep
from dnas_ee.sweep.spec import load_sweep, sweep_members
from dnas_ee.sweep.table import aggregate, spread, write_table

__all__ = ["SweepError", "aggregate", "load_sweep", "run_sweep", "spread", "sweep_members",
           "write_table"]
