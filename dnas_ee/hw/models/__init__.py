"""Cost models of one op on one accelerator description (-> ``OpCost``).

- ``analytic``: roofline model, no dependencies.
- ``zigzag_model``: ZigZag (``pip install -e '.[hw]'``), fixed or searched mapping.
- ``bit_scaling``: how operand bit widths scale MAC energy, cycles and traffic (both models).
- ``core_transfer``: moving a feature map between the cores of a multi-core accelerator.
- ``op_cost``: ``OpCost``, what every model (and a measured LUT row) gives for one op.

Imported through the face ``dnas_ee.hw``; this file re-exports nothing.
"""
