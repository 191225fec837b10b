"""Per-op lookup tables (LUTs): files, how they are filled, and the cost sources that read them.

- ``format``: the LUT file (``Lut``, save, load, validate, look up).
- ``build``: fill a LUT with a cost model (``dnas_ee.hw.models``), cached, in parallel.
- ``measure``: time every op on the JAX device at hand; ``measured_csv``: import a CSV.
- ``space``: the LUT of a search space (which ops, which file, building it).
- ``cost_source``: a search space's LUT, checked, as a cost source of ``dnas_ee.cost``.
- ``layer_costs``: ``LayerCosts``, any layer on any accelerator, filled in by a model.

Imported through the face ``dnas_ee.hw``; this file re-exports nothing.
"""
