"""Every method on the digits default, 3 seeds: the baselines a NAS result is compared with.

- ``static``: the backbone alone (8 bits);
- ``hand_placed``: an exit after every candidate position, one fixed branch
  (``method.branch_ops``), 8 bits;
- ``hand_placed matched-bits``: the same exits at the bits the ``dnas`` search of the
  same seed chose (backbone and each branch; ``derive.exits='hand_placed'`` on the
  shared ``dnas`` search): what the searched exits buy at equal bits;
- ``random`` / ``evolutionary``: 200 candidates each (random search, NSGA-II), scored
  with a supernet trained with its architecture frozen;
- ``dnas``: the differentiable search (softmax mixtures), and its relaxation modes
  ``dnas sampled`` (one sampled width per quantization group, ops and gates relaxed)
  and ``dnas gumbel`` (Gumbel-softmax mixtures, relaxed-Bernoulli gates);
- ``dnas exits-only``: exits and branches searched at 8 bits (``space.bits=(8,)``);
- ``dnas bits-only``: bit widths searched, no candidate exit (``space.exit_positions=()``).

    dnas-ee sweep --sweep experiments/sweeps/digits_methods.py --workdir runs/digits_methods
    dnas-ee table --workdir runs/digits_methods --out experiments/results/digits_methods
"""

DNAS = ["--config.method.name='dnas'"]


def get_sweep():
  return dict(
      configs={"digits": "experiments/configs/digits.py"},
      methods={
          "static": [], "hand_placed": [],
          "hand_placed matched-bits": DNAS + ["--config.derive.exits='hand_placed'"],
          "random": [], "evolutionary": [],
          "dnas": [],
          "dnas sampled": DNAS + ["--config.search.mixture_mode='sampled'"],
          "dnas gumbel": DNAS + ["--config.search.mixture_mode='gumbel'",
                                 "--config.search.gate_mode='gumbel'"],
          "dnas exits-only": DNAS + ["--config.space.bits=(8,)"],
          "dnas bits-only": DNAS + ["--config.space.exit_positions=()"],
      },
      seeds=(0, 1, 2),
      cost="edp")
