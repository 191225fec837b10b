"""How dnas-ee compiles its training steps: ``jit``, ``jax.jit`` with XLA:CPU's YNNPACK
fusions turned off.

Why (docs/benchmarks.md, "YNNPACK fusions off in the training steps"): on this project's
CPU programs the fusions cost more than they give. With them off, on the 2-core
development machine, the ResNet-20 QAT training step at batch 128 takes 0.6 of the time,
the ResNet-20 search step about four fifths, its XLA compile about four fifths (at half the
memory), and reading the compiled search step back from the persistent cache a third of the
time (rebuilding each YNNPACK fusion of a loaded executable looks its
instructions up through the whole module, a cost that grows faster than the program).

Only the two training steps (the search step, the retraining step) are compiled this way.
What it changes is the order of some float reductions, so their numbers differ in the last
bits from a compile with the fusions (the same maths: ``tests/train/test_search.py`` compares
both at 24/32 bits, where fake quantization cannot round the difference to a whole level).
The evaluation programs keep XLA's default: with the fusions a sample's logits do not depend
on the batch it is evaluated in, which the early-exit executor's bit-exact agreement with
the evaluation at other batch sizes relies on; XLA:CPU's other convolutions differ in the
last bit between batch sizes.

``DNAS_EE_YNN_FUSIONS=on`` keeps XLA's default for the training steps too; an ``XLA_FLAGS``
that sets ``--xla_cpu_experimental_ynn_fusion_type`` itself decides for every program.
Other backends than the CPU are left alone.
"""
from __future__ import annotations

import os
from typing import Callable

import jax

ENV_VAR = "DNAS_EE_YNN_FUSIONS"
FLAG = "xla_cpu_experimental_ynn_fusion_type"
_ON = ("1", "on", "true", "yes")


def compiler_options() -> dict[str, str] | None:
  """The XLA options the training steps are compiled with (None: XLA's defaults).

  Looks the backend up: call it at run time, never when a module is imported (importing
  dnas-ee must not initialize JAX's backends before ``jax.distributed.initialize``).
  """
  if os.environ.get(ENV_VAR, "").strip().lower() in _ON:
    return None
  if FLAG in os.environ.get("XLA_FLAGS", ""):   # the user's own setting wins
    return None
  if jax.default_backend() != "cpu":
    return None
  return {FLAG: ""}


def jit(fun: Callable, **kwargs):
  """``jax.jit(fun, **kwargs)`` compiled with ``compiler_options()`` (a training step)."""
  return jax.jit(fun, compiler_options=compiler_options(), **kwargs)
