"""Packaging beyond setup.cfg: the accelerator descriptions and LUTs as package data.

``hwmodels/`` stays at the repository root (its own README, edited there); a
wheel maps it to ``dnas_ee/hwmodels`` so that a non-editable install finds it
through ``importlib.resources`` (``dnas_ee.hw.hwmodels_dir``).
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["dnas_ee", "dnas_ee.*"]) + ["dnas_ee.hwmodels"],
    package_dir={"dnas_ee.hwmodels": "hwmodels"},
    package_data={"dnas_ee.hwmodels": ["README.md", "accelerators/*.yaml", "luts/*.json",
                                       "zigzag/*.yaml"]},
)
