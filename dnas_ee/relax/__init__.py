"""Relaxations of discrete choices (softmax, Gumbel, hard) and step schedules."""
from dnas_ee.relax.mixtures import (
    Relaxation, exit_gates, mixture_probs, sample_bernoulli, sample_one_hot, soft_exit_decision)
from dnas_ee.relax.schedules import make_schedule
from dnas_ee.relax.thresholds import bounded_threshold, threshold_logit

__all__ = ["Relaxation", "bounded_threshold", "exit_gates", "make_schedule", "mixture_probs",
           "sample_bernoulli", "sample_one_hot", "soft_exit_decision", "threshold_logit"]
