"""Where a run's genotype comes from: the differentiable search and its baselines.

``dnas`` (the search), ``static`` (the backbone alone), ``hand_placed`` (an exit
at every candidate position with one fixed branch), ``random`` (uniform samples
of the space) and ``evolutionary`` (NSGA-II, pymoo). Every method writes the same
``genotype.json``; retraining, calibration and evaluation are the same stages.
"""
from dnas_ee.methods.encoding import (
    check_genotype, decode, encode, encoding_bounds, one_hot_arch, sample_encodings, stack_archs)
from dnas_ee.methods.scoring import GenotypeScorer, score_arch, score_archs

__all__ = ["GenotypeScorer", "check_genotype", "decode", "encode", "encoding_bounds",
           "one_hot_arch", "sample_encodings", "score_arch", "score_archs", "stack_archs"]
