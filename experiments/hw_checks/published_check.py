"""Our accelerator models against published figures of the machines they describe.

    python experiments/hw_checks/published_check.py [--mapping-search] [--out FILE.json]

Builds the layers of three published workloads as ``OpSignature``s (NHWC, SAME
padding, every input size chosen so that the output sizes and the MACs equal the
original network's) and prices them with both cost models of this project
(ZigZag on-chip residency, fixed mapping or with ``--mapping-search`` ZigZag's own
mapping search, 1-30 s per layer; analytic) on the matching description:

- AlexNet conv layers (grouped conv2/4/5, 666 M MACs) and VGG-16 conv layers
  (15.3 G MACs) on ``eyeriss_like``, against Eyeriss (Chen et al., "Eyeriss: an
  energy-efficient reconfigurable accelerator for deep convolutional neural
  networks", IEEE JSSC 52(1), 2017, abstract): AlexNet conv layers at 35 frames/s
  and 278 mW (batch 4), VGG-16 conv layers at 0.7 frames/s and 236 mW (batch 3),
  both measured on the 65 nm chip at 200 MHz, 16-bit fixed point, chip power
  without DRAM. Energy per frame = power / frame rate.
- MobileNetV2 (224x224, width 1.0, 300 M MACs) on ``edge_tpu_like``, against the
  Coral Edge TPU's published time per inference (coral.ai/docs/edgetpu/benchmarks,
  Table 1: MobileNet v2 (224x224), 2.6 ms on the USB Accelerator and on the Dev
  Board; "the time required to execute the model only"). No published energy.

The per-layer figures of Eyeriss (JSSC 2017, per-layer tables) could not be found
in the searchable sources; the whole-network ones above are compared instead. All
layers are priced at 8 bits (the descriptions' reference precision).

Prints a markdown table (ours / published ratios) and writes the numbers as JSON.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from dnas_ee.hw import analytic_breakdown, evaluate_analytic, load_accelerator, run_zigzag
from dnas_ee.hw.models.zigzag_model import zigzag_cost, zigzag_model_name
from dnas_ee.space.signature import WEIGHTED_OPS, OpSignature

ROOT = Path(__file__).resolve().parents[2]   # the repository

# (frames/s, chip power W, source) of the published measurements.
PUBLISHED = {
    "alexnet_conv": dict(fps=35.0, power_w=0.278, accelerator="eyeriss_like",
                         source="Chen et al., IEEE JSSC 2017, abstract: AlexNet conv layers, "
                                "35 frames/s at 278 mW, batch 4, 200 MHz, 16 bit"),
    "vgg16_conv": dict(fps=0.7, power_w=0.236, accelerator="eyeriss_like",
                       source="Chen et al., IEEE JSSC 2017, abstract: VGG-16 conv layers, "
                              "0.7 frames/s at 236 mW, batch 3, 200 MHz, 16 bit"),
    "mobilenetv2_224": dict(latency_s=2.6e-3, power_w=None, accelerator="edge_tpu_like",
                            source="coral.ai/docs/edgetpu/benchmarks, Table 1: MobileNet v2 "
                                   "(224x224), 2.6 ms per inference (USB Accelerator and Dev "
                                   "Board)"),
}


def alexnet_conv() -> list[OpSignature]:
  """AlexNet's five conv layers (Krizhevsky et al. 2012; conv2/4/5 in two groups): 666 M MACs."""
  return [OpSignature("conv", 220, 220, 3, 96, kernel=11, stride=4),   # 55x55 out, as 227 VALID
          OpSignature("conv", 27, 27, 96, 256, kernel=5, groups=2),
          OpSignature("conv", 13, 13, 256, 384, kernel=3),
          OpSignature("conv", 13, 13, 384, 384, kernel=3, groups=2),
          OpSignature("conv", 13, 13, 384, 256, kernel=3, groups=2)]


def vgg16_conv() -> list[OpSignature]:
  """VGG-16's thirteen 3x3 conv layers at 224x224: 15.3 G MACs."""
  plan = [(224, 3, 64), (224, 64, 64), (112, 64, 128), (112, 128, 128), (56, 128, 256),
          (56, 256, 256), (56, 256, 256), (28, 256, 512), (28, 512, 512), (28, 512, 512),
          (14, 512, 512), (14, 512, 512), (14, 512, 512)]
  return [OpSignature("conv", h, h, ci, co, kernel=3) for h, ci, co in plan]


def mobilenetv2_224() -> list[OpSignature]:
  """MobileNetV2 1.0 at 224x224 (Sandler et al. 2018, Table 2), residual adds included."""
  sigs = [OpSignature("conv", 224, 224, 3, 32, kernel=3, stride=2)]
  h, cin = 112, 32
  for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                     (6, 160, 3, 2), (6, 320, 1, 1)]:
    for i in range(n):
      stride = s if i == 0 else 1
      hidden = cin * t
      if t != 1:
        sigs.append(OpSignature("conv", h, h, cin, hidden))
      sigs.append(OpSignature("conv", h, h, hidden, hidden, kernel=3, stride=stride,
                              groups=hidden))
      h_out = -(-h // stride)
      sigs.append(OpSignature("conv", h_out, h_out, hidden, c))
      if stride == 1 and cin == c:
        sigs.append(OpSignature("add", h_out, h_out, c, c))
      h, cin = h_out, c
  sigs += [OpSignature("conv", h, h, cin, 1280), OpSignature("gap", h, h, 1280, 1280),
           OpSignature("dense", 1, 1, 1280, 1000)]
  return sigs


WORKLOADS = dict(alexnet_conv=alexnet_conv, vgg16_conv=vgg16_conv, mobilenetv2_224=mobilenetv2_224)


def price(sigs: list[OpSignature], acc, mapping_search: bool = False) -> dict:
  """Total latency and energy (and their DRAM share) of ``sigs`` run one after the other on ``acc``."""
  out = dict(macs=sum(s.macs for s in sigs), zigzag=dict(latency_s=0.0, energy_j=0.0, dram_j=0.0),
             analytic=dict(latency_s=0.0, energy_j=0.0, dram_j=0.0))
  for sig in sigs:
    an = analytic_breakdown(sig, acc)
    cost = evaluate_analytic(sig, acc)
    out["analytic"]["latency_s"] += cost.latency_s
    out["analytic"]["energy_j"] += cost.energy_j
    out["analytic"]["dram_j"] += an.memory_energy_j.get("dram", 0.0)
    if sig.op in WEIGHTED_OPS:
      raw = run_zigzag(sig, acc, mapping_search=mapping_search)
      cost = zigzag_cost(sig, acc, raw, model=zigzag_model_name(mapping_search))
      dram_pj = sum(e for levels in raw.memory_energy_pj.values() for name, e in levels.items()
                    if "dram" in name.lower())
      out["zigzag"]["dram_j"] += dram_pj * 1e-12
    else:   # pooling/add/gap: the ZigZag LUTs hold the analytic row too
      out["zigzag"]["dram_j"] += an.memory_energy_j.get("dram", 0.0)
    out["zigzag"]["latency_s"] += cost.latency_s
    out["zigzag"]["energy_j"] += cost.energy_j
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--mapping-search", action="store_true",
                      help="ZigZag's mapping search instead of the fixed mapping (minutes)")
  parser.add_argument("--workloads", default=",".join(WORKLOADS),
                      help=f"comma-separated subset of {list(WORKLOADS)}")
  parser.add_argument("--out", default=None, help="JSON output (default: experiments/results/"
                      "hw_published/published_check[_search].json)")
  args = parser.parse_args()
  suffix = "_search" if args.mapping_search else ""
  args.out = args.out or str(ROOT / f"experiments/results/hw_published/published_check{suffix}.json")
  results = {}
  for name in args.workloads.split(","):
    build = WORKLOADS[name]
    pub = PUBLISHED[name]
    acc = load_accelerator(pub["accelerator"])
    ours = price(build(), acc, args.mapping_search)
    latency = pub.get("latency_s") or 1.0 / pub["fps"]
    energy = pub["power_w"] * latency if pub["power_w"] else None
    results[name] = dict(accelerator=acc.name, clock_hz=acc.clock_hz, ours=ours,
                         zigzag_model=zigzag_model_name(args.mapping_search),
                         published=dict(latency_s=latency, energy_j=energy, source=pub["source"]))
  print("| workload | accelerator | MACs | published latency | ZZ latency (ratio) "
        "| an latency (ratio) | published chip energy | ZZ energy w/o DRAM (ratio) "
        "| an energy w/o DRAM (ratio) | ZZ, an DRAM energy |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for name, r in results.items():
    pub, ours = r["published"], r["ours"]
    cells = [f"{1e3 * ours[m]['latency_s']:.3g} ms ({ours[m]['latency_s'] / pub['latency_s']:.2f})"
             for m in ("zigzag", "analytic")]
    if pub["energy_j"]:
      cells += [f"{1e3 * (ours[m]['energy_j'] - ours[m]['dram_j']):.3g} mJ "
                f"({(ours[m]['energy_j'] - ours[m]['dram_j']) / pub['energy_j']:.2f})"
                for m in ("zigzag", "analytic")]
    else:
      cells += [f"{1e3 * (ours[m]['energy_j'] - ours[m]['dram_j']):.3g} mJ (-)"
                for m in ("zigzag", "analytic")]
    pub_e = f"{1e3 * pub['energy_j']:.3g} mJ" if pub["energy_j"] else "not published"
    dram = ", ".join(f"{1e3 * ours[m]['dram_j']:.3g}" for m in ("zigzag", "analytic")) + " mJ"
    print(f"| {name} | {r['accelerator']} | {ours['macs'] / 1e6:.0f} M | "
          f"{1e3 * pub['latency_s']:.3g} ms | {cells[0]} | {cells[1]} | {pub_e} | {cells[2]} "
          f"| {cells[3]} | {dram} |")
  Path(args.out).parent.mkdir(parents=True, exist_ok=True)
  Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
  main()
