"""ZigZag cost model (``zigzag-dse``, the project's optional ``hw`` extra) for one op.

ZigZag (Mei et al., IEEE TC 2021; github.com/KULeuven-MICAS/zigzag) estimates
the cycles and energy of one layer on an accelerator described by a hardware
YAML file and a mapping YAML file. dnas-ee builds a one-layer ZigZag workload
from an ``OpSignature`` (conv, grouped/depthwise conv and dense, the latter as a
1x1 conv) and runs ZigZag's own stages on it.

Mapping: fixed by default, searched on request.

- ``mapping_search=False`` (default, model ``zigzag-<version>-fixed``): the
  spatial mapping is the one in the accelerator's mapping file (ZigZag reduces
  each unrolling to the layer's size, so a depthwise conv, ``K = C = 1`` per
  group, keeps only the ``OX``/``OY`` part, as in the analytic model; a dimension
  the file leaves empty is filled with ZigZag's single best candidate), and the
  temporal loop order is
  fixed: innermost to outermost ``FX, FY, C, OX, OY, K, G`` (output stationary:
  partial sums finish before they leave the innermost level). ZigZag's memory
  allocator then assigns the loops to memory levels. About 0.02 s per layer
  (measured here, zigzag-dse 3.9.1; the first call of a process also imports
  ZigZag, 0.3-0.5 s).
- ``mapping_search=True`` (model ``zigzag-<version>-search``): up to 3 spatial
  mappings and ZigZag's LOMA temporal-mapping search, keeping the mapping with
  the lowest energy-delay product: 1-3 s per conv layer here (3-5 s reported
  elsewhere), 50-150x slower. On the Edge-TPU-like accelerators it found the
  fixed mapping's cost on every conv tried (DRAM transfers dominate); on the
  Eyeriss-like one it saved 12-26% of the energy. A LUT of a few hundred ops takes
  seconds with the fixed mapping and several minutes with the search (spread over
  the cores by ``build_lut``): the search is worth it for a final, shipped LUT.

On top of ZigZag, the bit-width rules of ``dnas_ee.hw.models.bit_scaling`` are applied
(ZigZag already scales memory traffic with the layer's ``operand_precision``,
but keeps one energy per MAC on digital arrays): the MAC energy ZigZag reports
is multiplied by ``mac_energy_scale(wb, ab)``, and the array's ideal cycles by
``cycle_factor(wb, ab) - 1`` are added (an approximation: stalls are left as
ZigZag computed them; the factor is 1 on every shipped accelerator for widths up
to 8 bits). Cycles are converted to seconds at the description's clock, pJ to J.

Memory levels (``residency``). ZigZag, run on one layer with the shipped
hardware file, starts every operand in the top memory level (DRAM) and writes the
output back there: the cost of a layer run alone, not inside a network. With
``residency='onchip'`` (the default, model ``zigzag-<version>-onchip-fixed``) the
op gets the same operand homes as the analytic model (``analytic.operand_homes``):
activations that fit in their outermost on-chip memory live there (the hardware
file is rewritten so that DRAM no longer serves them: ZigZag then takes that
memory as their top level, where they start and end), weights are read from DRAM
once per inference (ZigZag's fixed loop order never refetches them when the
weight memory holds one ``FX x FY x C`` slice). ``residency='dram'`` (model
``zigzag-<version>-fixed``, the LUTs shipped before) keeps ZigZag's one-layer
view. ``hwmodels/README.md`` shows the energy breakdown of a few layers under both.

Pooling, add and global average pooling are not evaluated with ZigZag (dnas-ee
does not trust ZigZag's Pooling/Add modelling on these arrays): ``evaluate_zigzag``
returns the analytic cost for them, and the row's ``model`` says ``analytic-1``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import logging
import hashlib
import tempfile
from pathlib import Path
from typing import Any

from dnas_ee.hw.accelerators.description import Accelerator
from dnas_ee.hw.models.analytic import DRAM, evaluate_analytic, operand_homes
from dnas_ee.hw.models.bit_scaling import (check_supported_bits, cycle_factor, mac_energy_scale,
                                           psum_bits)
from dnas_ee.hw.models.op_cost import OpCost
from dnas_ee.space.signature import WEIGHTED_OPS, OpSignature

INSTALL_HINT = "pip install -e '.[hw]'  (or: pip install 'zigzag-dse>=3.8,<4')"
# Innermost first: reduction loops inside, so each output is finished before it moves up.
FIXED_LOOP_ORDER = ("FX", "FY", "C", "OX", "OY", "K", "G", "B")
RESIDENCIES = ("onchip", "dram")
# Layer operand -> memory operand of ZigZag's hardware files (every shipped mapping file links so).
MEMORY_OPERANDS = {"W": "I2", "I": "I1", "O": "O"}
_PJ = 1e-12


class ZigZagError(RuntimeError):
  """ZigZag is missing, or could not evaluate an op; the message says what to do."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ZigZagResult:
  """ZigZag's raw numbers for one layer, before the bit-width rules are applied.

  Attributes:
    cycles: ``latency_total2`` (computation, stalls, on- and off-loading).
    ideal_cycles: ``ideal_temporal_cycle`` (array cycles with the spatial mapping's utilization).
    energy_pj, mac_energy_pj, mem_energy_pj: total, MAC and memory energy in pJ.
    temporal_ordering: the temporal loops used, innermost first, as ``[[dim, size], ...]``
      (a ZigZag mapping's ``temporal_ordering``).
    spatial_mapping: ZigZag's text of the spatial mapping used.
    memory_energy_pj: ``{operand: {memory name: pJ}}``, ZigZag's memory energy per
      operand (``W``, ``I``, ``O``) and level (``dram`` included), for breakdowns.
  """
  cycles: float
  ideal_cycles: float
  energy_pj: float
  mac_energy_pj: float
  mem_energy_pj: float
  temporal_ordering: tuple[tuple[str, int], ...]
  spatial_mapping: str
  memory_energy_pj: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)


def zigzag_available() -> bool:
  """Whether ``zigzag-dse`` can be imported."""
  try:
    return importlib.util.find_spec("zigzag") is not None
  except (ImportError, ValueError):  # a broken or half-removed installation
    return False


def zigzag_version() -> str:
  """The installed ``zigzag-dse`` version; ``ZigZagError`` if it is not installed."""
  _require_zigzag()
  from importlib.metadata import PackageNotFoundError, version
  try:
    return version("zigzag-dse")
  except PackageNotFoundError:  # imported from a source checkout
    return "unknown"


def zigzag_model_version(mapping_search: bool = False, residency: str = "onchip") -> str:
  """LUT model version of ``evaluate_zigzag``'s rows, e.g. ``3.9.1-onchip-fixed``."""
  _check_residency(residency)
  middle = "-onchip" if residency == "onchip" else ""
  return f"{zigzag_version()}{middle}-{'search' if mapping_search else 'fixed'}"


def zigzag_model_name(mapping_search: bool = False, residency: str = "onchip") -> str:
  """Model name of the rows ``evaluate_zigzag`` produces, e.g. ``zigzag-3.9.1-onchip-fixed``."""
  return f"zigzag-{zigzag_model_version(mapping_search, residency)}"


def _check_residency(residency: str) -> None:
  if residency not in RESIDENCIES:
    raise ValueError(f"residency={residency!r}: use 'onchip' (activations stay on chip when they "
                     "fit, weights read once from DRAM) or 'dram' (ZigZag's one-layer view)")


def _require_zigzag() -> None:
  if not zigzag_available():
    raise ZigZagError(f"the ZigZag cost model needs zigzag-dse, which is not installed: "
                      f"{INSTALL_HINT}; or build the LUT with model='analytic'")


def resolve_zigzag_file(ref: str) -> str:
  """``zigzag:<path>`` -> the file inside the installed package; other paths unchanged."""
  if not ref.startswith("zigzag:"):
    return ref
  _require_zigzag()
  import zigzag
  path = Path(zigzag.__file__).resolve().parent / ref[len("zigzag:"):]
  if not path.is_file():
    raise ZigZagError(f"{ref} not found in the installed zigzag-dse ({path}); the description "
                      "was written for zigzag-dse 3.9.1: install a 3.x version that ships it "
                      "or point the description's 'zigzag:' files elsewhere")
  return str(path)


def _same_padding(size: int, out: int, kernel: int, stride: int) -> tuple[int, int]:
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def zigzag_workload(sig: OpSignature) -> list[dict[str, Any]]:
  """The one-layer ZigZag workload of a conv/dense op (ZigZag's own grouped-conv form).

  Example:
    >>> layer, = zigzag_workload(OpSignature("conv", 8, 8, 16, 16, kernel=3, groups=16))
    >>> layer["loop_dims"], layer["loop_sizes"]
    (['B', 'K', 'G', 'OX', 'OY', 'C', 'FX', 'FY'], [1, 1, 16, 8, 8, 1, 3, 3])
  """
  if sig.op not in WEIGHTED_OPS:
    raise ValueError(f"ZigZag workloads are built for conv/dense ops only, not {sig.op!r}")
  g, k, s = sig.groups, sig.kernel, sig.stride
  return [{
      "id": 0,
      "name": "op",
      "operator_type": "Conv",
      # Same equation and loop order as ZigZag's ONNX Conv parser (padded dims last).
      "equation": "O[b][g][k][oy][ox]+=W[g][k][c][fy][fx]*I[b][g][c][iy][ix]",
      "dimension_relations": [f"ix={s}*ox+1*fx", f"iy={s}*oy+1*fy"],
      "loop_dims": ["B", "K", "G", "OX", "OY", "C", "FX", "FY"],
      "loop_sizes": [1, sig.cout // g, g, sig.w_out, sig.h_out, sig.cin // g, k, k],
      "operand_precision": {"W": sig.w_bits, "I": sig.a_bits,
                            "O": psum_bits(sig.w_bits, sig.a_bits), "O_final": sig.a_bits},
      "operand_source": {"I": 0},
      "pr_loop_dims": ["IX", "IY"],
      "pr_loop_sizes": [sig.w, sig.h],
      "padding": [list(_same_padding(sig.w, sig.w_out, k, s)),
                  list(_same_padding(sig.h, sig.h_out, k, s))],
  }]


def onchip_operands(sig: OpSignature, acc: Accelerator) -> frozenset[str]:
  """Layer operands (``W``/``I``/``O``) that live on chip during an inference (``operand_homes``)."""
  return frozenset(op for op, home in operand_homes(sig, acc).items() if home != DRAM)


@functools.cache
def _variant_dir() -> Path:
  return Path(tempfile.mkdtemp(prefix="dnas_ee_zigzag_hw_"))


@functools.cache
def hardware_file(hardware: str, onchip: frozenset[str] = frozenset()) -> str:
  """The ZigZag hardware file with DRAM no longer serving the ``onchip`` operands.

  ZigZag takes the outermost memory serving an operand as the place where it
  starts (inputs, weights) or ends (outputs). Removing ``I``/``O`` from DRAM's
  operands (and its port allocations) makes the on-chip memory that served them
  their top level: no DRAM traffic for them. The rewritten file is cached per
  process in a temporary folder (named by its content hash).

  Args:
    hardware: a description's ``zigzag.hardware`` (``zigzag:`` prefix allowed).
    onchip: layer operands to keep off DRAM.

  Returns:
    A path to the original file (``onchip`` empty) or to the rewritten one.
  """
  path = resolve_zigzag_file(hardware)
  if not onchip:
    return path
  import yaml
  data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
  drop = {MEMORY_OPERANDS[op] for op in onchip}
  memories = data["memories"]
  top = next(reversed(memories))   # ZigZag lists memories innermost first; DRAM is the last
  served = [op for op in memories[top]["operands"] if op not in drop]
  if any(not any(op in m["operands"] for name, m in memories.items() if name != top)
         for op in drop):
    raise ZigZagError(f"{hardware}: an operand of {sorted(onchip)} has no on-chip memory below "
                      f"{top!r}, so it cannot be kept on chip")
  memories[top]["operands"] = served
  for port in memories[top]["ports"]:
    port["allocation"] = [a for a in port["allocation"] if a.split(",")[0].strip() not in drop]
  text = yaml.safe_dump(data, sort_keys=False)
  digest = hashlib.sha256(text.encode()).hexdigest()[:16]
  out = _variant_dir() / f"{Path(path).stem}_{digest}.yaml"
  if not out.exists():
    out.write_text(text, encoding="utf-8")
  return str(out)


@functools.cache
def _fixed_temporal_stage():
  """A ZigZag temporal-mapping stage that yields one mapping in ``FIXED_LOOP_ORDER``."""
  from zigzag.opt.loma.engine import LomaEngine
  from zigzag.opt.loma.memory_allocator import MemoryAllocator
  from zigzag.stages.mapping.temporal_mapping_generator_stage import TemporalMappingGeneratorStage

  class FixedTemporalMappingStage(TemporalMappingGeneratorStage):
    """Same as ZigZag's stage with a complete user temporal ordering, computed per layer."""

    def generate_temporal_mappings(self):
      engine = LomaEngine(accelerator=self.accelerator, layer=self.layer,
                          spatial_mapping=self.spatial_mapping, mapping_type=self.mapping_type,
                          **self.kwargs)
      loops = engine.get_temporal_loops()   # sizes left after the spatial unrolling (ceil)
      rank = {d: i for i, d in enumerate(FIXED_LOOP_ORDER)}
      ordering = sorted(loops.items(), key=lambda item: rank.get(item[0].name, len(rank)))
      allocator = MemoryAllocator(self.accelerator, self.layer, self.spatial_mapping,
                                  [(dim, int(size)) for dim, size in ordering], self.mapping_type)
      yield allocator.run()

  return FixedTemporalMappingStage


@contextlib.contextmanager
def _quiet_zigzag():
  """ZigZag logs every stage at INFO and warns about routine mapping fixes; silence it."""
  logger = logging.getLogger("zigzag")
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


def run_zigzag(sig: OpSignature, acc: Accelerator, *, mapping_search: bool = False,
               residency: str = "onchip") -> ZigZagResult:
  """Runs ZigZag on one conv/dense op with the accelerator's ZigZag files (no bit scaling).

  ``residency``: ``'onchip'`` keeps the operands of ``onchip_operands`` off DRAM
  (``hardware_file``); ``'dram'`` runs the description's hardware file as it is.
  """
  _require_zigzag()
  _check_residency(residency)
  if not acc.zigzag_hardware or not acc.zigzag_mapping:
    raise ZigZagError(f"accelerator {acc.name!r} ({acc.path}) names no ZigZag hardware/mapping "
                      "files: add a 'zigzag: {hardware: ..., mapping: ...}' section, or build "
                      "the LUT with model='analytic'")
  from zigzag.mapping.temporal_mapping import TemporalMappingType
  from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage
  from zigzag.stages.main import MainStage
  from zigzag.stages.mapping.spatial_mapping_generation import SpatialMappingGeneratorStage
  from zigzag.stages.mapping.temporal_mapping_generator_stage import TemporalMappingGeneratorStage
  from zigzag.stages.parser.accelerator_parser import AcceleratorParserStage
  from zigzag.stages.parser.workload_parser import WorkloadParserStage
  from zigzag.stages.results.reduce_stages import MinimalEDPStage
  from zigzag.stages.workload_iterator import WorkloadStage

  temporal = TemporalMappingGeneratorStage if mapping_search else _fixed_temporal_stage()
  onchip = onchip_operands(sig, acc) if residency == "onchip" else frozenset()
  stages = [WorkloadParserStage, AcceleratorParserStage, WorkloadStage, MinimalEDPStage,
            SpatialMappingGeneratorStage, MinimalEDPStage, temporal, CostModelStage]
  with tempfile.TemporaryDirectory(prefix="dnas_ee_zigzag_") as dump, _quiet_zigzag():
    main = MainStage(
        list_of_callables=stages,
        accelerator=hardware_file(acc.zigzag_hardware, onchip),
        workload=zigzag_workload(sig),
        mapping=resolve_zigzag_file(acc.zigzag_mapping),
        dump_folder=dump,
        loma_lpf_limit=6,
        loma_show_progress_bar=False,
        nb_mappings_generated=3 if mapping_search else 1,
        enable_mix_spatial_mapping_generation=False,
        access_same_data_considered_as_no_access=True,  # as zigzag.api does
        temporal_mapping_type=TemporalMappingType("uneven"),
    )
    try:
      answers = main.run()
    except Exception as err:  # ZigZag raises bare asserts/ValueErrors deep inside
      raise ZigZagError(f"ZigZag failed on op {sig.key()} with {acc.zigzag_hardware} / "
                        f"{acc.zigzag_mapping}: {type(err).__name__}: {err}; use model='analytic' "
                        "for this accelerator or fix its ZigZag files") from err
  if len(answers) != 1:
    raise ZigZagError(f"ZigZag returned {len(answers)} results for the one-layer workload of "
                      f"{sig.key()}; expected 1")
  cme = answers[0][0]
  ordering = tuple((dim.name, int(size)) for dim, size in _temporal_loops(cme))
  return ZigZagResult(
      cycles=float(cme.latency_total2), ideal_cycles=float(cme.ideal_temporal_cycle),
      energy_pj=float(cme.energy_total), mac_energy_pj=float(cme.mac_energy),
      mem_energy_pj=float(cme.mem_energy), temporal_ordering=ordering,
      spatial_mapping=str(cme.spatial_mapping), memory_energy_pj=_memory_breakdown(cme))


def _memory_breakdown(cme) -> dict[str, dict[str, float]]:
  """``{operand: {memory name: pJ}}`` from ZigZag's per-level energy breakdown."""
  names = {"W": "W", "I": "I", "O": "O"}
  out: dict[str, dict[str, float]] = {}
  for layer_op, energies in cme.mem_energy_breakdown.items():
    op = names.get(str(layer_op), str(layer_op))
    mem_op = cme.layer.memory_operand_links.layer_to_mem_op(layer_op)
    levels = cme.mem_hierarchy_dict[mem_op]
    out[op] = {level.name: float(e) for level, e in zip(levels, energies)}
  return out


def _temporal_loops(cme) -> list:
  """The temporal loops of a cost-model evaluation, innermost first (from the output operand)."""
  from zigzag.datatypes import Constants
  mapping = cme.temporal_mapping.mapping_dic_origin
  op = Constants.OUTPUT_LAYER_OP if Constants.OUTPUT_LAYER_OP in mapping else next(iter(mapping))
  return [loop for level in mapping[op] for loop in level]


def evaluate_zigzag(sig: OpSignature, acc: Accelerator, *, mapping_search: bool = False,
                    residency: str = "onchip") -> OpCost:
  """Latency and energy of one op on one core of ``acc`` with ZigZag (see the module doc).

  Args:
    sig: the op.
    acc: an accelerator description with a ``zigzag:`` section.
    mapping_search: search the mapping (3-5 s per layer) instead of the fixed one (0.1 s).
    residency: ``'onchip'`` (activations on chip when they fit, weights read once from
      DRAM, as the analytic model) or ``'dram'`` (every operand from and to DRAM).

  Returns:
    ``OpCost`` with ``model='zigzag-<version>-onchip-fixed'`` (``-onchip-search``; without
    ``-onchip`` for ``residency='dram'``); for pooling,
    add and gap, the analytic cost (``model='analytic-1'``).

  Raises:
    ZigZagError: zigzag-dse is not installed (install with ``pip install -e '.[hw]'``),
      the description has no ZigZag files, or ZigZag failed.
  """
  _require_zigzag()
  check_supported_bits(sig, acc)
  if sig.op not in WEIGHTED_OPS:
    return evaluate_analytic(sig, acc)
  raw = run_zigzag(sig, acc, mapping_search=mapping_search, residency=residency)
  return zigzag_cost(sig, acc, raw, model=zigzag_model_name(mapping_search, residency))


def zigzag_cost(sig: OpSignature, acc: Accelerator, raw: ZigZagResult, *, model: str) -> OpCost:
  """Applies the bit-width rules to ZigZag's numbers and converts them to seconds and joules."""
  energy_scale = mac_energy_scale(sig.w_bits, sig.a_bits, reference_bits=acc.reference_bits,
                                  multiplier_fraction=acc.multiplier_energy_fraction)
  factor = float(cycle_factor(sig.w_bits, sig.a_bits, reference_bits=acc.reference_bits,
                              bit_packing=acc.bit_packing))
  cycles = raw.cycles + (factor - 1.0) * raw.ideal_cycles
  energy_pj = raw.mem_energy_pj + raw.mac_energy_pj * energy_scale
  return OpCost(macs=sig.macs, cycles=cycles, latency_s=cycles / acc.clock_hz,
                energy_j=energy_pj * _PJ, model=model)


__all__ = ["FIXED_LOOP_ORDER", "INSTALL_HINT", "MEMORY_OPERANDS", "RESIDENCIES", "hardware_file",
           "onchip_operands", "zigzag_model_version", "ZigZagError", "ZigZagResult", "evaluate_zigzag",
           "resolve_zigzag_file", "run_zigzag", "zigzag_available", "zigzag_cost",
           "zigzag_model_name", "zigzag_version", "zigzag_workload"]
