"""Differentiable hardware cost of early-exit networks: a public, reusable API.

Pure functions of probabilities and dense cost tables; import them into any
JAX training loop. See ``expected.py`` for the maths (docs/design.md), ``search_cost.py``
for what the search prices (the objective's cost composition), ``network.py`` for the
costs of a derived network.
"""
from dnas_ee.cost.expected import (
    block_reach, exit_path_costs, exit_probabilities, expected_block_costs, expected_branch_costs,
    expected_cost, expected_cost_per_sample, expected_product_per_sample, static_cost)
from dnas_ee.cost.exit_penalty import CostTable, ExpectedCost, cost_table, early_exit_cost
from dnas_ee.cost.penalty import PENALTY_FORMS, cost_penalty
from dnas_ee.cost.search_cost import CostContext, CostSpec, search_cost
from dnas_ee.cost.tables import CombinedCosts, CostSource, CostTables, ShapeCosts, build_cost_tables

__all__ = [
    "CostTable", "ExpectedCost", "cost_table", "early_exit_cost",
    "PENALTY_FORMS", "CombinedCosts", "CostSource", "CostTables", "ShapeCosts", "block_reach",
    "CostContext", "CostSpec", "build_cost_tables", "cost_penalty", "exit_probabilities",
    "exit_path_costs", "expected_block_costs", "expected_branch_costs", "expected_cost",
    "expected_cost_per_sample", "expected_product_per_sample", "search_cost", "static_cost",
]
