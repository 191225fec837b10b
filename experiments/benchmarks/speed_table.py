"""Markdown tables of the speed benchmarks, from their JSON (docs/benchmarks.md's tables).

Run:  python experiments/benchmarks/speed_table.py \\
        --search experiments/results/search_step_cpu.json \\
        --profile experiments/results/train_step_profile_cpu.json [--doc docs/benchmarks.md]

Prints the tables; with ``--doc`` it also rewrites the text between the
``<!-- speed-tables:begin -->`` and ``<!-- speed-tables:end -->`` markers of that file.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

BEGIN, END = "<!-- speed-tables:begin -->", "<!-- speed-tables:end -->"


def search_table(results: dict) -> str:
  lines = [f"Search step ({results['platform']}, {results.get('device', '')}, batch "
           f"{results.get('batch_size', 64)}, {results.get('iters', '?')} timed iterations, wall time; "
           f"`{results.get('command', 'search_step.py')}`):", "",
           "| space | mode | search img/s | plain img/s | search / plain | compile (s) | "
           "compile from cache (s) | XLA mem (MiB) |",
           "|---|---|---|---|---|---|---|---|"]
  for space, modes in results["spaces"].items():
    for mode, r in modes.items():
      if "error" in r:
        lines.append(f"| {space} | {mode} | not measured: {r['error'][:90]} | | | | | |")
        continue
      lines.append(f"| {space} | {mode} | {r['search_images_per_s']:.1f} | "
                   f"{r['plain_images_per_s']:.1f} | {r['search_over_plain']:.2f} | "
                   f"{r['compile_s']:.0f} | {r.get('cached_compile_s', float('nan')):.1f} | "
                   f"{r['xla_peak_memory_mib']:.0f} |")
  lines += torch_lines(results.get("torch"), "in the run of the table above")
  return "\n".join(lines)


def torch_lines(t: dict | None, source: str) -> list[str]:
  """The PyTorch comparison of one benchmark run; ``source`` names that run (two JSON files
  may each carry one, taken under different loads)."""
  if not t:
    return []
  clock = {"cpu": "process CPU time", "wall": "wall time"}.get(t.get("clock"), "wall time")
  return ["", f"ResNet-20 training step at batch {t['batch_size']}, {source}, timed on "
          f"{clock} (torch {t['torch']}, {t['threads']} threads; JAX timed just before and after "
          f"the torch process, the better kept):", "",
          "| JAX (dnas-ee, 8-bit QAT) | torch eager, channels-last (float) | "
          "torch.compile, channels-last (float) | JAX / torch eager | JAX / torch.compile |",
          "|---|---|---|---|---|",
          f"| {t['jax_plain_images_per_s']:.0f} img/s | "
          f"{t.get('eager_images_per_s', float('nan')):.0f} img/s | "
          f"{t.get('compile_images_per_s', float('nan')):.0f} img/s | "
          f"{t.get('jax_over_torch_eager', float('nan')):.2f} | "
          f"{t.get('jax_over_torch_compile', float('nan')):.2f} |"]


def profile_table(p: dict) -> str:
  step = p["step_ms"]
  clock = {"cpu": "process CPU time, all threads", "wall": "wall time"}.get(p.get("clock"), "wall time")
  lines = [f"`{p.get('command', 'train_step_profile.py')}` ({clock}):", "",
           f"Plain ResNet-20 training step ({p['platform']}, batch {p['batch_size']}, 8-bit "
           f"weights and activations): {step:.0f} ms, {p['images_per_s']:.0f} img/s"
           + (f"; batch 128: {p['images_per_s_batch128']:.0f} img/s" if "images_per_s_batch128" in p
              else "") + ".", "",
           "| part | ms | share of the step |", "|---|---|---|"]
  for k, v in p["breakdown_ms"].items():
    lines.append(f"| {k.replace('_', ' ')} | {v:.1f} | {100 * v / step:.0f}% |")
  lines += ["", f"Convolutions ({p['convolutions']} in the forward pass), forward + both gradients, "
            f"each shape timed alone: NHWC {p['nhwc_conv_ms']:.1f} ms, NCHW {p['nchw_conv_ms']:.1f} "
            f"ms" + (f"; filter gradient as an im2col matmul {p['filter_grad_patches_ms']:.1f} ms "
                      f"against XLA's {p['breakdown_ms']['conv_filter_grad']:.1f} ms"
                      if "filter_grad_patches_ms" in p else "") + "."]
  flags = p.get("xla_flags_step_ms")
  if flags:
    lines += ["", "| XLA_FLAGS | whole step (ms), own process, best of 2 turns |", "|---|---|"]
    lines += [f"| {k or '(default)'} | " + (f"{v:.1f}" if isinstance(v, float) else v) + " |"
              for k, v in flags.items()]
  lines += torch_lines(p.get("torch"), "in the profile's run")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--search", action="append", default=[], help="search_step.py JSON (repeatable)")
  parser.add_argument("--profile", default="", help="train_step_profile.py JSON")
  parser.add_argument("--doc", default="", help="markdown file whose speed-tables block to rewrite")
  args = parser.parse_args()
  parts = [search_table(json.loads(Path(f).read_text())) for f in args.search]
  if args.profile:
    parts.append(profile_table(json.loads(Path(args.profile).read_text())))
  text = "\n\n".join(parts)
  print(text)
  if args.doc:
    doc = Path(args.doc)
    old = doc.read_text()
    if BEGIN not in old or END not in old:
      raise SystemExit(f"{doc} has no {BEGIN} ... {END} block to fill")
    new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: f"{BEGIN}\n{text}\n{END}",
                 old, flags=re.S)
    doc.write_text(new)


if __name__ == "__main__":
  main()
