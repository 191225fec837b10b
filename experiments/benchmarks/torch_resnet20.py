"""A PyTorch ResNet-20 training step, for comparison with the JAX one (benchmark only).

Run:  python experiments/benchmarks/torch_resnet20.py --batch 64 [--iters 10] [--modes eager,compile]

Needs only ``torch`` and ``numpy`` (torch is never a dependency of dnas-ee; install
it in a separate environment and point ``search_step.py --torch-python`` at it).
The network matches ``resnet_cifar`` with ``blocks_per_stage=(3, 3, 3)``: 3x3
convolutions without bias, BatchNorm, ReLU, option-B (1x1 conv + BN) shortcuts,
global average pooling, a dense classifier; float32, channels-last memory
format, SGD with momentum and weight decay, one step = forward, backward, update.
Prints one JSON line: images/s per mode.
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn


class Block(nn.Module):
  def __init__(self, cin, cout, stride):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(cout)
    self.proj = None
    if stride != 1 or cin != cout:
      self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

  def forward(self, x):
    y = torch.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return torch.relu(y + (x if self.proj is None else self.proj(x)))


def resnet20(num_classes=10, widths=(16, 32, 64), blocks=3):
  layers, cin = [nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                 nn.ReLU()], widths[0]
  for stage, width in enumerate(widths):
    for i in range(blocks):
      layers.append(Block(cin, width, 2 if stage > 0 and i == 0 else 1))
      cin = width
  layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
  return nn.Sequential(*layers)


CLOCK = time.process_time   # or time.perf_counter: see --clock


def images_per_s(mode: str, batch: int, iters: int) -> tuple[float, float]:
  """(images/s, seconds of the first step, i.e. compile + run) of one training mode."""
  torch.manual_seed(0)
  model = resnet20().to(memory_format=torch.channels_last)
  opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
  x = torch.randn(batch, 3, 32, 32).to(memory_format=torch.channels_last)
  y = torch.randint(0, 10, (batch,))
  loss_fn = nn.CrossEntropyLoss()

  def step(x, y):
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return loss

  if mode == "compile":
    fwd_bwd = torch.compile(lambda x, y: loss_fn(model(x), y))
    def step(x, y):  # noqa: F811 (the compiled forward+backward, the optimizer eager)
      opt.zero_grad(set_to_none=True)
      loss = fwd_bwd(x, y)
      loss.backward()
      opt.step()
      return loss
  t0 = time.perf_counter()
  step(x, y)
  first = time.perf_counter() - t0
  for _ in range(2):
    step(x, y)
  best = float("inf")
  for _ in range(2):
    t0 = CLOCK()
    for _ in range(iters):
      step(x, y)
    best = min(best, (CLOCK() - t0) / iters)
  return batch / best, first


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--iters", type=int, default=10)
  parser.add_argument("--modes", default="eager,compile")
  parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                      help="cpu: the process's CPU time, all threads; wall: elapsed time")
  args = parser.parse_args()
  global CLOCK
  CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
  result = dict(clock=args.clock, torch=torch.__version__, threads=torch.get_num_threads(), batch_size=args.batch)
  for mode in args.modes.split(","):
    try:
      ips, first = images_per_s(mode, args.batch, args.iters)
      result[f"{mode}_images_per_s"], result[f"{mode}_first_step_s"] = ips, first
    except Exception as err:  # torch.compile needs a C++ compiler; report, do not crash
      result[f"{mode}_error"] = f"{type(err).__name__}: {err}"[:300]
  print(json.dumps(result))


if __name__ == "__main__":
  main()
