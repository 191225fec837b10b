"""Hardware cost models and lookup tables: accelerator descriptions -> per-op latency/energy.

The public face of three rooms, each importing only the rooms above it in this list:
``accelerators/`` (the descriptions: units, schema, files), ``models/`` (cost
models of one op: analytic, ZigZag, bit-width scaling, core-to-core transfers),
``lut/`` (LUT files: format, build, measure, CSV import, a search space's LUT,
cost sources). ``cli.py`` holds ``dnas-ee lut``. No module inside ``hw/`` imports
this face.

- ``load_accelerator`` / ``list_accelerators``: validated YAML descriptions in ``hwmodels/``.
- ``evaluate_analytic``: roofline model, no dependencies.
- ``evaluate_zigzag``: ZigZag (``pip install -e '.[hw]'``), fixed or searched mapping.
- ``save_lut`` / ``load_lut`` (file format), ``build_lut`` (cached parallel build),
  ``import_measured_csv``, ``measure_lut`` (timing ops on a JAX device): per-op LUTs.
- ``lut_cost_source`` / ``build_space_lut`` / ``default_lut_path``: the LUT of a search space
  (``hwmodels/luts/<accelerator>.json``) as a cost source, and its build cache.
- ``transfer_cost`` / ``transfer_tables``: moving feature maps between cores of a
  multi-core accelerator (the arrays ``dnas_ee.cost.multicore`` takes).
"""
from __future__ import annotations

from dnas_ee.hw.accelerators.description import (Accelerator, AcceleratorError, DramSpec, LinkSpec,
                                                 MemoryLevel)
from dnas_ee.hw.accelerators.load import hwmodels_dir, list_accelerators, load_accelerator
from dnas_ee.hw.accelerators.units import UnitError, parse_quantity
from dnas_ee.hw.lut.build import build_lut
from dnas_ee.hw.lut.cost_source import LutCostSource, lut_cost_source
from dnas_ee.hw.lut.format import (BuildStats, Lut, LutError, format_lut_table, is_measured_device,
                                   load_lut, save_lut)
from dnas_ee.hw.lut.layer_costs import LayerCosts
from dnas_ee.hw.lut.measure import measure_lut, measure_space_lut
from dnas_ee.hw.lut.measured_csv import import_measured_csv
from dnas_ee.hw.lut.space import (SpaceLutBuild, build_space_lut, default_lut_path,
                                  required_signatures)
from dnas_ee.hw.models.analytic import AnalyticBreakdown, analytic_breakdown, evaluate_analytic
from dnas_ee.hw.models.bit_scaling import (cycle_factor, mac_energy_scale, psum_bits,
                                           vector_energy_scale)
from dnas_ee.hw.models.core_transfer import transfer_cost, transfer_tables
from dnas_ee.hw.models.op_cost import OpCost
from dnas_ee.hw.models.zigzag_model import (ZigZagError, ZigZagResult, evaluate_zigzag, run_zigzag,
                                            zigzag_available, zigzag_version)

__all__ = [
    "LayerCosts",
    "Accelerator", "AcceleratorError", "AnalyticBreakdown", "BuildStats", "DramSpec", "LinkSpec",
    "Lut", "LutCostSource", "LutError", "MemoryLevel", "OpCost", "SpaceLutBuild", "UnitError",
    "ZigZagError", "ZigZagResult", "analytic_breakdown", "build_lut", "build_space_lut",
    "cycle_factor", "default_lut_path", "evaluate_analytic", "evaluate_zigzag", "format_lut_table",
    "hwmodels_dir", "import_measured_csv", "is_measured_device", "list_accelerators",
    "load_accelerator", "load_lut", "lut_cost_source", "mac_energy_scale", "measure_lut",
    "measure_space_lut", "parse_quantity", "psum_bits", "required_signatures", "run_zigzag",
    "save_lut", "transfer_cost", "transfer_tables", "vector_energy_scale", "zigzag_available",
    "zigzag_version",
]
