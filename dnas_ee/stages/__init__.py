"""What the stages of a run share, and the run-level calibration and evaluation.

``run_dir`` reads a run dir (config, trained networks, per-exit logits, the
evaluation's thresholds); ``calibrate`` and ``evaluate`` are the bodies of the
``calibrate`` and ``evaluate`` stages. ``dnas_ee.pipeline`` strings the stages
together; nothing here imports it.
"""
