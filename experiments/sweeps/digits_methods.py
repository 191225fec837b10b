"""Every method on the digits default, 3 seeds: the baselines a NAS result is compared with.

static backbone, exits placed by hand (after every candidate position, one fixed
branch), random search and NSGA-II (200 candidates each, scored with a supernet
trained with its architecture frozen), and the differentiable search in each of its
relaxation modes (softmax mixtures; Gumbel-softmax with relaxed-Bernoulli gates;
single-path sampling).

    dnas-ee sweep --sweep experiments/sweeps/digits_methods.py --workdir runs/digits_methods
    dnas-ee table --workdir runs/digits_methods
"""


def get_sweep():
  return dict(
      configs={"digits": "experiments/configs/digits.py"},
      methods={
          "static": [], "hand_placed": [], "random": [], "evolutionary": [],
          "dnas": [],
          "dnas gumbel": ["--config.method.name='dnas'", "--config.search.mixture_mode='gumbel'",
                          "--config.search.gate_mode='gumbel'"],
          "dnas sampled": ["--config.method.name='dnas'", "--config.search.mixture_mode='sampled'"],
      },
      seeds=(0, 1, 2),
      cost="edp")
