"""Fixtures of the sweep and method tests (helpers in sweep_support.py)."""
import sweep_support  # noqa: F401  (puts this folder on sys.path)
