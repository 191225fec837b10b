"""Fake quantization with straight-through gradients and bit-width mixtures."""
from dnas_ee.quant.fake_quant import (
    MAX_BITS, MIN_BITS, SampledWidth, check_bits, mix_quantized_activations,
    mix_quantized_weights, quantize_activations, quantize_weights, ste_round)

__all__ = [
    "MAX_BITS", "MIN_BITS", "SampledWidth", "check_bits", "mix_quantized_activations",
    "mix_quantized_weights", "quantize_activations", "quantize_weights", "ste_round",
]
