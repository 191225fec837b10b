"""dnas-ee: hardware-aware differentiable NAS of early-exit networks in JAX.

The public API, re-exported explicitly. The cost layer (``dnas_ee.cost``) is
usable on its own from any JAX training loop.
"""
from dnas_ee import cost
from dnas_ee.exits import EarlyExitExecutor
from dnas_ee.config import ConfigError, apply_overrides, base_config, load_config_file
from dnas_ee.models.layers import ArchParam
from dnas_ee.models.supernet import ArchProbs, Supernet, relaxed_architecture
from dnas_ee.quant import quantize_activations, quantize_weights
from dnas_ee.relax import Relaxation
from dnas_ee.space.genotype import Genotype, derive_genotype, genotype_space
from dnas_ee.space.signature import OpSignature
from dnas_ee.space.trace import TracedNetwork, trace_exit_network, trace_ops
from dnas_ee.space.space import SearchSpace, make_search_space

__version__ = "0.1.0"

__all__ = [
    "TracedNetwork", "trace_exit_network", "trace_ops",
    "ArchParam", "ArchProbs", "ConfigError", "EarlyExitExecutor", "Genotype", "OpSignature", "Relaxation", "SearchSpace",
    "Supernet", "apply_overrides", "base_config", "cost", "derive_genotype", "genotype_space",
    "load_config_file", "make_search_space", "quantize_activations", "quantize_weights",
    "relaxed_architecture",
]
