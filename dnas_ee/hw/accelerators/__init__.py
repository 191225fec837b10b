"""Accelerator descriptions: the validated data every hardware cost model reads.

- ``description``: the frozen ``Accelerator`` (memories, DRAM, cores, link), SI units.
- ``schema``: parsed YAML -> ``Accelerator``, each problem an ``AcceleratorError``
  naming the key and the fix.
- ``load``: the shipped files (``hwmodels/accelerators/``), read refusing duplicated keys.
- ``units``: ``"500 MHz"``-style quantities -> SI.

Imported through the face ``dnas_ee.hw``; this file re-exports nothing, so that
importing one module here never imports the others.
"""
