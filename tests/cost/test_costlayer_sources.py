"""Costing any layer on a shipped accelerator: LUT rows, model-filled rows, the documented error."""
import dataclasses
import warnings

import numpy as np
import pytest

from dnas_ee.cost import ShapeCosts, cost_table
from dnas_ee.hw import LayerCosts, LutError, build_lut, evaluate_analytic, load_accelerator
from dnas_ee.space.signature import OpSignature
from dnas_ee.space.trace import TracedNetwork

ACC = "edge_tpu_like"
IN_LUT = OpSignature("conv", 8, 8, 16, 24, 3, 1, 1)
MISSING = OpSignature("conv", 8, 8, 16, 24, 3, 2, 4, 4, 8)   # grouped, strided, 4/8 bits


def _lut_with_marked_row():
  """A LUT holding ``IN_LUT`` only, its latency set to 1 s so that a lookup is recognisable."""
  lut = build_lut([IN_LUT], ACC, model="analytic", workers=1, progress=False)
  row = dataclasses.replace(lut.rows[IN_LUT.key()], latency_s=1.0)
  return dataclasses.replace(lut, rows={IN_LUT.key(): row})


def test_missing_layer_is_filled_by_the_model_and_cached(tmp_path):
  cache = tmp_path / "filled.json"
  costs = LayerCosts(ACC, lut=_lut_with_marked_row(), fill_model="analytic", cache_path=cache)
  with pytest.warns(UserWarning, match=r"1 of 2 layers were not in .* analytic model"):
    table = costs.table([[IN_LUT], [IN_LUT, MISSING]])
  filled = evaluate_analytic(MISSING, load_accelerator(ACC))
  np.testing.assert_allclose(costs(IN_LUT), [1.0, costs(IN_LUT)[1]])
  np.testing.assert_allclose(costs(MISSING), [filled.latency_s, filled.energy_j])
  np.testing.assert_allclose(table[1], costs(IN_LUT) + costs(MISSING))
  assert costs.filled == 1
  with warnings.catch_warnings():
    warnings.simplefilter("error")        # a second request is served from the cache, silently
    costs.table([[MISSING]])
  assert MISSING.key() in cache.read_text()
  # A new source reads the cache file as its LUT: nothing to fill.
  again = LayerCosts(ACC, lut=cache, missing="error")
  np.testing.assert_allclose(again(MISSING), costs(MISSING))


def test_missing_layer_error_and_its_fix_without_a_config(tmp_path):
  costs = LayerCosts(ACC, lut=_lut_with_marked_row(), missing="error", fill_model="analytic")
  with pytest.raises(LutError, match=r"1 layers are not in .*missing='fill'.*build_lut"):
    costs.table([[IN_LUT, MISSING]])
  # The fix the message gives, as written: build the ops into a file, then read it.
  path = tmp_path / "my_lut.json"
  build_lut([MISSING], ACC, model="analytic", cache_path=path, workers=1, progress=False)
  fixed = LayerCosts(ACC, lut=path, missing="error", metrics=("latency_s", "macs"))
  assert fixed(MISSING)[1] == MISSING.macs


def test_lut_of_another_accelerator_is_refused(tmp_path):
  path = tmp_path / "eyeriss.json"
  build_lut([IN_LUT], "eyeriss_like", model="analytic", cache_path=path, workers=1,
            progress=False)
  with pytest.raises(LutError, match="built for 'eyeriss_like', not 'edge_tpu_like'"):
    LayerCosts(ACC, lut=path)


def test_cost_table_of_a_traced_network():
  net = TracedNetwork(backbone=((IN_LUT,), (MISSING, IN_LUT)), exits=((MISSING,),))
  table = cost_table(net, ShapeCosts())
  assert table.metrics[:2] == ("macs", "weight_bytes")
  np.testing.assert_array_equal(table.backbone[:, 0], [IN_LUT.macs, MISSING.macs + IN_LUT.macs])
  np.testing.assert_array_equal(table.exits[:, 0], [MISSING.macs])
  assert table.static[0] == net.macs - MISSING.macs


@pytest.mark.parametrize("module", ["dnas_ee.hw.lut.layer_costs", "dnas_ee.space.trace"])
def test_docstring_examples(module):
  import doctest
  import importlib
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
  assert result.failed == 0 and result.attempted > 0


def test_default_lut_is_the_fill_models_own():
  from dnas_ee.hw import default_lut_path, load_lut
  path = default_lut_path(ACC, "analytic")
  if not path.is_file():
    pytest.skip(f"{path} is not shipped in this checkout")
  first = next(iter(load_lut(path).rows))
  costs = LayerCosts(ACC, fill_model="analytic", missing="error")
  assert costs.lut.model_name == "analytic" and costs.fill_model == "analytic"
  assert costs(OpSignature.from_key(first)).shape == (2,)


def test_zigzag_fills_a_grouped_strided_conv():
  from dnas_ee.hw import evaluate_zigzag, zigzag_available
  if not zigzag_available():
    pytest.skip("ZigZag is not installed (pip install -e '.[hw]')")
  costs = LayerCosts(ACC, lut=None, fill_model="zigzag")
  with pytest.warns(UserWarning, match="1 of 1 layers .* zigzag model"):
    got = costs(MISSING)
  want = evaluate_zigzag(MISSING, load_accelerator(ACC))
  np.testing.assert_allclose(got, [want.latency_s, want.energy_j])
