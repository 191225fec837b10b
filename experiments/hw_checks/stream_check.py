"""Stream's schedule of tiny early-exit networks against this project's multi-core model.

Two halves, because stream-dse 0.0.8 (the newest on PyPI) needs zigzag-dse 2.x while
dnas-ee needs zigzag-dse >= 3.8: Stream runs in its own virtual environment.

    python -m venv /tmp/streamvenv
    /tmp/streamvenv/bin/pip install stream-dse==0.0.8 zigzag-dse==2.5.4
    /tmp/streamvenv/bin/python experiments/hw_checks/stream_check.py --stream \
        --out experiments/results/hw_published/stream_check_stream.json      # Stream's half
    python experiments/hw_checks/stream_check.py --stream-json \
        experiments/results/hw_published/stream_check_stream.json \
        --out experiments/results/hw_published/stream_check.json             # ours + table

The networks (``NETWORKS``): a 3-layer conv backbone and one exit branch (conv,
then a full-spatial conv as the classifier) after backbone layer 1, all int8:
``static`` (backbone only), ``exit_same_core`` (branch on core 0, after layer 1),
``exit_other_core`` (branch on core 1). Stream schedules the whole graph (every
layer runs: the sample that reaches the final exit), layer by layer (no layer
splitting), on ``quad_core_edge_tpu_like``: four TPU-like cores built from
``hwmodels/zigzag/quad_core_edge_tpu_like_core.yaml`` (the numbers of our
description), Stream's off-chip DRAM core, and a 2x2 mesh whose link bandwidth
and energy are read from ``hwmodels/accelerators/quad_core_edge_tpu_like.yaml``.

Our half prices each layer with ``evaluate_zigzag`` on the same description and
composes them with ``dnas_ee.cost.multicore.multicore_latency_per_sample`` (the
final exit's latency) and ``dnas_ee.hw.transfer_cost``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]   # the repository

# (name, input h, cin, cout, kernel, stride): int8, SAME padding, batch 1.
BACKBONE = [("b0", 16, 16, 32, 3, 1), ("b1", 16, 32, 32, 3, 1), ("b2", 16, 32, 64, 3, 2)]
BRANCH = [("e0", 16, 32, 32, 3, 2), ("e1", 8, 32, 10, 8, 8)]   # e1: full-spatial classifier
EXIT_AFTER = 1          # the branch reads backbone layer 1's output
NETWORKS = {"static": None, "exit_same_core": 0, "exit_other_core": 1}   # branch core
# Stream's operands_to_prefetch: every weight loaded from DRAM before the first layer, or
# each layer's weights fetched when the layer is scheduled.
SCHEDULES = {"weights_prefetched": ["W"], "weights_on_demand": []}


# ---------------------------------------------------------------- Stream's half (venv) --
def _stream_layer(h, cin, cout, k, s, source, op_type):
  out = -(-h // s)
  pad_total = max((out - 1) * s + k - h, 0)
  pad = (pad_total // 2, pad_total - pad_total // 2)
  layer = {
      "operator_type": op_type,
      "equation": "O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]",
      "dimension_relations": [f"ix={s}*ox+1*fx", f"iy={s}*oy+1*fy"],
      "loop_dim_size": {"B": 1, "K": cout, "C": cin, "OY": out, "OX": out, "FY": k, "FX": k},
      "operand_precision": {"O": 16, "O_final": 8, "W": 8, "I": 8},
      "operand_source": {"W": [], "I": [] if source is None else [source]},
      "constant_operands": ["W"] if source is not None else ["I", "W"],
      "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"},
      "padding": {"IY": pad, "IX": pad},
  }
  if source is not None:
    layer["operand_source_dimension_mapping"] = {"I": {"IX": "OX", "IY": "OY", "C": "K"}}
  return layer


def stream_workload(branch_core):
  """Stream's user-defined workload dict and mapping dict of one network."""
  workload, prev = {}, None
  for i, (_, h, cin, cout, k, s) in enumerate(BACKBONE):
    workload[i] = _stream_layer(h, cin, cout, k, s, prev, "Conv")
    prev = i
  mapping = {"default": {"core_allocation": 0}, "Conv": {"core_allocation": 0}}
  if branch_core is not None:
    src = EXIT_AFTER
    for _, h, cin, cout, k, s in BRANCH:
      lid = len(workload)
      workload[lid] = _stream_layer(h, cin, cout, k, s, src, "ConvExit")
      src = lid
    mapping["ConvExit"] = {"core_allocation": branch_core}
  return workload, mapping


def _yaml(path):
  import yaml
  return yaml.safe_load(Path(path).read_text())


def _quantity(text: str) -> float:
  return float(str(text).split()[0])


def stream_accelerator():
  """Stream 0.0.8 ``Accelerator`` with the numbers of our quad-core description."""
  from zigzag.classes.hardware.architecture.core import Core
  from zigzag.classes.hardware.architecture.memory_hierarchy import MemoryHierarchy
  from zigzag.classes.hardware.architecture.memory_instance import MemoryInstance
  from zigzag.classes.hardware.architecture.operational_array import MultiplierArray
  from zigzag.classes.hardware.architecture.operational_unit import Multiplier
  from stream.classes.hardware.architecture.accelerator import Accelerator
  from stream.inputs.examples.hardware.cores.offchip import get_offchip_core
  from stream.inputs.examples.hardware.nocs.mesh_2d import get_2d_mesh

  core_yaml = _yaml(ROOT / "hwmodels/zigzag/quad_core_edge_tpu_like_core.yaml")
  desc = _yaml(ROOT / "hwmodels/accelerators/quad_core_edge_tpu_like.yaml")
  mems = core_yaml["memories"]
  served = {"[]": {(0, 0)}, "['D2']": {(0, 1)}, "['D1', 'D2']": "all"}

  def instance(name, m, ports):
    bw = {p["type"]: p["bandwidth_max"] for p in m["ports"]}
    r_bw = bw.get("read", bw.get("read_write"))
    w_bw = bw.get("write", bw.get("read_write"))
    return MemoryInstance(name=name, size=m["size"], r_bw=r_bw, w_bw=w_bw, r_cost=m["r_cost"],
                          w_cost=m["w_cost"], area=0, latency=1, **ports)

  def core(cid):
    array = MultiplierArray(Multiplier([8, 8], core_yaml["operational_array"]["unit_energy"], 1),
                            {"D1": 32, "D2": 32})
    h = MemoryHierarchy(operational_array=array)
    h.add_memory(memory_instance=instance("rf_128B", mems["rf_128B"],
                                          dict(r_port=1, w_port=1, rw_port=0)),
                 operands=("I2",), port_alloc=({"fh": "w_port_1", "tl": "r_port_1",
                                                "fl": None, "th": None},),
                 served_dimensions=served[str(mems["rf_128B"]["served_dimensions"])])
    h.add_memory(memory_instance=instance("rf_2B", mems["rf_2B"],
                                          dict(r_port=2, w_port=2, rw_port=0)),
                 operands=("O",), port_alloc=({"fh": "w_port_1", "tl": "r_port_1",
                                               "fl": "w_port_2", "th": "r_port_2"},),
                 served_dimensions=served[str(mems["rf_2B"]["served_dimensions"])])
    h.add_memory(memory_instance=instance("sram_2MB", mems["sram_2MB"],
                                          dict(r_port=1, w_port=1, rw_port=0,
                                               min_r_granularity=64, min_w_granularity=64)),
                 operands=("I1", "I2", "O"),
                 port_alloc=({"fh": "w_port_1", "tl": "r_port_1", "fl": None, "th": None},
                             {"fh": "w_port_1", "tl": "r_port_1", "fl": None, "th": None},
                             {"fh": "w_port_1", "tl": "r_port_1", "fl": "w_port_1",
                              "th": "r_port_1"}),
                 served_dimensions="all")
    return Core(cid, array, h, [{"D1": ("K", 32), "D2": ("C", 32)}])

  cores = [core(i) for i in range(4)]
  offchip = get_offchip_core(id=4)
  link = desc["cores"]["link"]
  graph = get_2d_mesh(cores, 2, 2, int(_quantity(link["bandwidth"])), _quantity(link["energy"]),
                      None, None, offchip)
  return Accelerator("quad_core_edge_tpu_like", graph, offchip_core_id=4)


def run_stream() -> dict:
  """Stream's latency (cycles) and energy (pJ) of every network in ``NETWORKS``."""
  import logging
  logging.disable(logging.WARNING)
  from importlib.metadata import version
  out = {"stream_dse": version("stream-dse"), "zigzag_dse": version("zigzag-dse")}
  Path("outputs").mkdir(exist_ok=True)
  for schedule, prefetch in SCHEDULES.items():
    out[schedule] = {name: _stream_network(branch_core, prefetch, f"{schedule}_{name}")
                     for name, branch_core in NETWORKS.items()}
  return out


def _stream_network(branch_core, prefetch: list, tag: str) -> dict:
  """Stream's schedule of one network (branch on core ``branch_core``, or none)."""
  from zigzag.classes.stages import MainStage
  from stream.classes.stages import (GenerateCNWorkloadHybridStage, InterCoreMappingStage,
                                     IntraCoreMappingStage)
  from stream.classes.workload.dnn_workload import DNNWorkload
  acc = stream_accelerator()
  workload, mapping = stream_workload(branch_core)
  graph = DNNWorkload(workload, mapping, acc)
  main = MainStage([GenerateCNWorkloadHybridStage, IntraCoreMappingStage, InterCoreMappingStage],
                   accelerator=acc, workload=graph, loma_lpf_limit=6, nb_ga_individuals=4,
                   nb_ga_generations=1, node_hw_performances_path=f"outputs/{tag}.pickle",
                   plot_hof=False, plot_file_name=False, plot_full_schedule=False,
                   plot_data_transfer=False, cn_define_mode=1, hint_loops=[],
                   scheduler_candidate_selection="latency", operands_to_prefetch=prefetch)
  scme = main.run()[0][0]
  return dict(
      latency_cycles=float(scme.latency), energy_pj=float(scme.energy),
      onchip_pj=float(scme.total_cn_onchip_energy),
      offchip_pj=float(scme.total_cn_offchip_link_energy + scme.total_cn_offchip_memory_energy
                       + scme.total_eviction_to_offchip_link_energy
                       + scme.total_eviction_to_offchip_memory_energy
                       + scme.total_sink_layer_output_offchip_link_energy
                       + scme.total_sink_layer_output_offchip_memory_energy),
      core_to_core_pj=float(scme.total_core_to_core_link_energy
                            + scme.total_core_to_core_memory_energy),
      nodes=[dict(layer=n.id[0], core=n.core_allocation, start=float(n.start),
                  end=float(n.end), onchip_pj=float(n.onchip_energy),
                  offchip_pj=float(n.offchip_energy))
             for n in sorted(scme.workload.nodes(), key=lambda n: n.start)])


# ------------------------------------------------------------------ our half (dnas-ee) --
def ours() -> dict:
  """Our multi-core model's final-exit latency (cycles) and energy (pJ) of every network."""
  import jax.numpy as jnp
  from dnas_ee.cost.multicore import multicore_latency_per_sample
  from dnas_ee.hw import evaluate_zigzag, load_accelerator, run_zigzag, transfer_cost
  from dnas_ee.space.signature import OpSignature
  acc = load_accelerator("quad_core_edge_tpu_like")
  price = lambda layers: [evaluate_zigzag(OpSignature("conv", h, h, ci, co, kernel=k, stride=s),
                                          acc) for _, h, ci, co, k, s in layers]
  blocks, branch = price(BACKBONE), price(BRANCH)
  b_lat = jnp.array([c.latency_s for c in blocks])
  a_lat = jnp.array([sum(c.latency_s for c in branch)])
  _, h, cin, *_ = BRANCH[0]
  t_lat, t_en = transfer_cost(acc, h * h * cin)       # int8 feature map of the exit's input
  leave_final = jnp.array([[0.0, 1.0]])                # the sample Stream schedules: all layers
  out = {}
  for name, core in NETWORKS.items():
    energy = sum(c.energy_j for c in blocks)
    if core is None:
      latency = float(b_lat.sum())
    else:
      parallel = jnp.array([1.0 if core else 0.0])
      latency = float(multicore_latency_per_sample(
          b_lat, a_lat, jnp.array([t_lat]), jnp.array([1.0]), parallel, leave_final,
          (EXIT_AFTER + 1,))[0])
      energy += sum(c.energy_j for c in branch) + (t_en if core else 0.0)
    out[name] = dict(latency_cycles=latency * acc.clock_hz, energy_pj=energy * 1e12)
  out["layers"] = {}
  for layer, cost in zip(BACKBONE + BRANCH, blocks + branch):
    name, h, ci, co, k, s = layer
    raw = run_zigzag(OpSignature("conv", h, h, ci, co, kernel=k, stride=s), acc)
    dram = sum(e for levels in raw.memory_energy_pj.values() for m, e in levels.items()
               if m == "dram")
    out["layers"][name] = dict(cycles=cost.cycles, ideal_cycles=raw.ideal_cycles,
                               energy_pj=cost.energy_j * 1e12, dram_pj=dram)
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--stream", action="store_true", help="run Stream (in its venv)")
  parser.add_argument("--stream-json", type=Path, help="Stream's half, to compare with ours")
  parser.add_argument("--out", type=Path, required=True)
  args = parser.parse_args()
  if args.stream:
    result = run_stream()
  else:
    sys.path.insert(0, str(ROOT))
    stream = json.loads(args.stream_json.read_text())
    result = dict(stream=stream, ours=ours())
    print("| Stream schedule | network | Stream latency (cycles) | ours | ours/Stream "
          "| Stream energy (nJ) | ours | ours/Stream |")
    print("|---|---|---|---|---|---|---|---|")
    for schedule in SCHEDULES:
      for name in NETWORKS:
        s, o = stream[schedule][name], result["ours"][name]
        print(f"| {schedule} | {name} | {s['latency_cycles']:.0f} | {o['latency_cycles']:.0f} | "
              f"{o['latency_cycles'] / s['latency_cycles']:.2f} | {s['energy_pj'] / 1e3:.1f} | "
              f"{o['energy_pj'] / 1e3:.1f} | {o['energy_pj'] / s['energy_pj']:.2f} |")
    print("\n| layer | Stream compute cycles (end - start) | ours cycles (ideal) | "
          "ours energy nJ (DRAM) |")
    print("|---|---|---|---|")
    nodes = stream["weights_prefetched"]["exit_other_core"]["nodes"]
    for node, (name, row) in zip(nodes, result["ours"]["layers"].items()):
      print(f"| {name} (core {node['core']}) | {node['end'] - node['start']:.0f} | "
            f"{row['cycles']:.0f} ({row['ideal_cycles']:.0f}) | {row['energy_pj'] / 1e3:.1f} "
            f"({row['dram_pj'] / 1e3:.1f}) |")
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
  main()
