"""LUT of a search space: the cost source, shipped LUTs, errors, the build cache, `dnas-ee lut`."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from support import oracle

from dnas_ee.config import ConfigError, apply_overrides, base_config, load_config_file
from dnas_ee.cost import build_cost_tables, expected_cost
from dnas_ee.data.shapes import dataset_shape
from dnas_ee.hw.accelerators.load import hwmodels_dir, list_accelerators
from dnas_ee.hw.lut.cost_source import LutCostSource, lut_cost_source
from dnas_ee.hw.lut.format import LutError, load_lut, save_lut
from dnas_ee.hw.lut.measured_csv import import_measured_csv
from dnas_ee.hw.lut.space import build_space_lut, default_lut_path, required_signatures
from dnas_ee.models.supernet import ArchProbs
from dnas_ee.space.genotype import derive_genotype
from dnas_ee.train.build import build_cost_source, build_space

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "experiments" / "configs"
SHIPPED = ("edge_tpu_like", "eyeriss_like", "tesla_npu_like", "quad_core_edge_tpu_like")
# A small digits space (ops the shipped LUTs do not all hold: builds are exercised for real).
TINY = ["--config.backbone.options.stage_widths=(8, 16, 16)",
        "--config.backbone.options.stem_width=8",
        "--config.space.branch_ops=('conv3_s2_x1', 'dwsep3_s1_x2', 'maxpool2_s2', 'identity')",
        "--config.space.bits=(4, 8)"]


def _config(name="digits.py", overrides=(), accelerator="edge_tpu_like", lut=""):
  config = load_config_file(CONFIGS / name)
  apply_overrides(config, list(overrides))
  config.hw.accelerator, config.hw.lut = accelerator, str(lut)
  return config


def _space(config):
  return build_space(config, *dataset_shape(config.data))


def _cli(capsys, *argv):
  from dnas_ee.cli import main
  code = main(list(argv))
  out = capsys.readouterr()
  return code, out.out, out.err


# --------------------------------------------------------------------------- shapes


def test_dataset_shape_without_loading():
  assert dataset_shape(base_config().data) == ((8, 8, 1), 10)
  assert dataset_shape({"name": "cifar10"}) == ((32, 32, 3), 10)
  assert dataset_shape({"name": "cifar100"}) == ((32, 32, 3), 100)
  assert dataset_shape({"name": "svhn"}) == ((32, 32, 3), 10)
  with pytest.raises(ConfigError, match="unknown data.name 'cifar11'"):
    dataset_shape({"name": "cifar11"})


def test_dataset_shape_of_a_tfds_builder_reads_its_info(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  # mnist is registered in tfds: its info needs neither the data nor a download.
  assert dataset_shape({"name": "tfds:mnist", "dir": str(tmp_path)}) == ((28, 28, 1), 10)


# --------------------------------------------------------------------------- cost source


@pytest.fixture(scope="module")
def digits_lut():
  config = _config()
  space = _space(config)
  source = build_cost_source(config, space)        # shapes + the shipped edge_tpu_like LUT
  return space, source, build_cost_tables(space, source)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 100_000))
def test_relaxed_lut_cost_at_zero_temperature_equals_discrete_network(digits_lut, seed):
  space, source, tables = digits_lut
  p, n = len(space.branches), space.num_blocks
  k = jax.random.split(jax.random.key(seed), 5)
  beta = jax.random.normal(k[0], (p,))
  op_logits = jax.random.normal(k[1], (p, space.depth, space.num_ops))
  bb = jax.random.normal(k[2], (n, space.num_bits))
  br = jax.random.normal(k[3], (p, space.num_bits))
  soft = jax.random.bernoulli(k[4], 0.4, (8, p)).astype(jnp.float32)
  hot = lambda logits: jax.nn.one_hot(jnp.argmax(logits, -1), logits.shape[-1])
  arch = ArchProbs((beta > 0).astype(jnp.float32), hot(op_logits), hot(bb), hot(br),
                   jnp.zeros_like(beta))
  relaxed = np.asarray(expected_cost(tables, arch, soft, tuple(b.position for b in space.branches)))
  genotype = derive_genotype(space, beta, op_logits, bb, br)
  per_exit = oracle.exit_costs(genotype, source)   # the network's layers, priced by the LUT
  kept = [i for i in range(p) if beta[i] > 0]
  charged = []
  for row in np.asarray(soft):
    fired = [j for j, i in enumerate(kept) if row[i] == 1.0]
    charged.append(per_exit[fired[0] if fired else len(kept)])
  assert source.metrics == ("macs", "weight_bytes", "bitops", "latency_s", "energy_j")
  np.testing.assert_allclose(relaxed, np.mean(charged, axis=0), rtol=2e-5)
  assert np.all(relaxed[2:] > 0)


def test_lookups_are_cached_per_signature(digits_lut):
  space, source, _ = digits_lut
  lut_source = source.sources[1]
  assert isinstance(lut_source, LutCostSource) and lut_source.metrics == ("latency_s", "energy_j")
  sig = space.all_signatures()[0]
  first = lut_source(sig)
  assert lut_source(sig) is first and not first.flags.writeable
  row = lut_source.lut.lookup(sig)
  np.testing.assert_array_equal(first, [row.latency_s, row.energy_j])


@pytest.mark.parametrize("accelerator", SHIPPED)
def test_shipped_luts_load_without_zigzag_and_cover_the_spaces(monkeypatch, accelerator):
  monkeypatch.setitem(sys.modules, "zigzag", None)   # `import zigzag` now fails
  from dnas_ee.hw.models.zigzag_model import zigzag_available
  assert not zigzag_available()
  assert default_lut_path(accelerator) == hwmodels_dir() / "luts" / f"{accelerator}.json"
  for name in ("digits.py", "cifar10_mbv2.py", "cifar10_resnet20.py"):
    config = _config(name, accelerator=accelerator)
    source = lut_cost_source(config.hw.accelerator, config.hw.lut, _space(config))
    assert source.model.startswith("zigzag-") and source.model.endswith("-fixed")
  analytic = default_lut_path(accelerator, "analytic")
  for name in ("digits.py", "cifar10_mbv2.py"):
    config = _config(name, accelerator=accelerator, lut=analytic)
    assert lut_cost_source(config.hw.accelerator, config.hw.lut, _space(config)).model == "analytic-2"


def test_every_described_accelerator_has_a_shipped_lut():
  assert set(SHIPPED) == set(list_accelerators())
  for name in SHIPPED:
    for path in (default_lut_path(name), default_lut_path(name, "analytic")):
      assert path.stat().st_size < 2_000_000, f"{path} is too big for the repository"


# --------------------------------------------------------------------------- errors


def _shipped_json(name="edge_tpu_like"):
  return json.loads(default_lut_path(name).read_text())


def test_lut_missing_an_op_names_the_op_and_the_build_command(tmp_path):
  config = _config()
  space = _space(config)
  data = _shipped_json()
  needed = {s.key() for s in space.all_signatures()}
  dropped = next(r["op"] for r in data["rows"] if r["op"] in needed)
  data["rows"] = [r for r in data["rows"] if r["op"] != dropped]
  path = tmp_path / "partial.json"
  path.write_text(json.dumps(data))
  config.hw.lut = str(path)
  with pytest.raises(LutError) as err:
    lut_cost_source(config.hw.accelerator, config.hw.lut, space)
  message = str(err.value)
  assert dropped in message and "lacks 1 of" in message
  assert "dnas-ee lut build --config" in message and "--accelerator edge_tpu_like" in message
  assert f"--output {path}" in message


def test_stale_foreign_and_mixed_luts_are_refused(tmp_path):
  config = _config()
  space = _space(config)
  path = tmp_path / "lut.json"
  config.hw.lut = str(path)
  with pytest.raises(LutError, match="no LUT at .*dnas-ee lut build"):
    lut_cost_source(config.hw.accelerator, config.hw.lut, space)
  data = _shipped_json()
  path.write_text(json.dumps({**data, "accelerator_hash": "0" * 64}))
  with pytest.raises(LutError, match="stale.*dnas-ee lut build --config .* --accelerator edge_tpu"):
    lut_cost_source(config.hw.accelerator, config.hw.lut, space)
  path.write_text(json.dumps(_shipped_json("eyeriss_like")))
  with pytest.raises(LutError, match="built for accelerator 'eyeriss_like', not 'edge_tpu_like'"):
    lut_cost_source(config.hw.accelerator, config.hw.lut, space)
  conv = next(i for i, r in enumerate(data["rows"]) if r["op"].startswith("conv"))
  data["rows"][conv]["model"] = "analytic-2"
  path.write_text(json.dumps(data))
  with pytest.raises(LutError, match="one LUT file holds one cost model"):
    lut_cost_source(config.hw.accelerator, config.hw.lut, space)
  config.hw.accelerator = ""
  with pytest.raises(LutError, match="config.hw.accelerator is empty"):
    lut_cost_source(config.hw.accelerator, config.hw.lut, space)


@pytest.fixture
def private_hwmodels(tmp_path, monkeypatch):
  """A copy of hwmodels/ without LUTs, used as $DNAS_EE_HWMODELS."""
  folder = tmp_path / "hwmodels"
  shutil.copytree(hwmodels_dir(), folder, ignore=shutil.ignore_patterns("luts"))
  monkeypatch.setenv("DNAS_EE_HWMODELS", str(folder))
  return folder


def test_without_zigzag_the_error_says_how_to_build_an_analytic_lut(private_hwmodels, monkeypatch):
  monkeypatch.setitem(sys.modules, "zigzag", None)
  config = _config(overrides=TINY)
  with pytest.raises(LutError) as err:
    lut_cost_source(config.hw.accelerator, config.hw.lut, _space(config))
  assert "--model analytic" in str(err.value) and "edge_tpu_like.analytic.json" in str(err.value)
  result = build_space_lut(_space(config), "edge_tpu_like", progress=False)   # auto: analytic
  assert result.path == private_hwmodels / "luts" / "edge_tpu_like.analytic.json"
  assert result.model == "analytic-2" and "ZigZag is not installed" in result.notes[0]
  config.hw.lut = str(result.path)
  assert lut_cost_source(config.hw.accelerator, config.hw.lut, _space(config)).model == "analytic-2"
  tables = build_cost_tables(_space(config), build_cost_source(config, _space(config)))
  assert tables.metrics[3:] == ("latency_s", "energy_j") and np.all(tables.block > 0)


# --------------------------------------------------------------------------- build cache


def test_one_file_collects_the_rows_of_every_space(tiny_path, tmp_path):
  output = tmp_path / "tiny.json"
  small, other = _space(_config(overrides=TINY)), _space(_config(overrides=TINY + [
      "--config.space.branch_ops=('conv5_s2_x1', 'avgpool2_s2', 'identity')"]))
  first = build_space_lut(small, tiny_path, model="analytic", output=output, progress=False)
  assert first.lut.build_stats.reused == 0 and first.file_rows == len(required_signatures(small))
  second = build_space_lut(other, tiny_path, output=output, progress=False)   # auto: the file's
  union = set(required_signatures(small)) | set(required_signatures(other))
  assert second.model == "analytic-2" and second.file_rows == len(union)
  assert second.lut.build_stats.reused > 0 and len(second.spaces) == 2
  again = build_space_lut(small, tiny_path, output=output, progress=False)
  assert again.lut.build_stats.evaluated == 0 and again.file_rows == len(union)
  assert load_lut(output).space_signature.split() == list(second.spaces)
  # A changed description: every op evaluated again, the other space's rows dropped.
  tiny_path.write_text(tiny_path.read_text().replace("clock: 1 GHz", "clock: 2 GHz"))
  stale = build_space_lut(small, tiny_path, output=output, progress=False)
  assert stale.lut.build_stats.reused == 0 and stale.notes and "older description" in stale.notes[0]
  assert stale.file_rows == len(required_signatures(small)) and len(stale.spaces) == 1


def test_a_file_keeps_one_model_and_one_accelerator(tiny_path, tmp_path):
  from dnas_ee.hw.models.zigzag_model import zigzag_available
  space = _space(_config(overrides=TINY))
  output = tmp_path / "edge.json"
  build_space_lut(space, "edge_tpu_like", model="analytic", output=output, progress=False)
  with pytest.raises(LutError, match="holds the LUT of accelerator 'edge_tpu_like', not 'tiny'"):
    build_space_lut(space, tiny_path, model="analytic", output=output, progress=False)
  if zigzag_available():
    with pytest.raises(LutError, match="holds analytic-2 rows.*one LUT file holds one cost model"):
      build_space_lut(space, "edge_tpu_like", model="zigzag", output=output, progress=False)
  csv = tmp_path / "measured.csv"
  csv.write_text("op,latency_s,energy_j\n" + f"{space.all_signatures()[0].key()},1e-6,1e-9\n")
  save_lut(import_measured_csv(csv, "edge_tpu_like"), output)
  with pytest.raises(LutError, match="holds measured rows"):
    build_space_lut(space, "edge_tpu_like", output=output, progress=False)


# --------------------------------------------------------------------------- CLI


def test_cli_lut_build_and_show(tmp_path, capsys):
  output = tmp_path / "digits_edge.analytic.json"
  argv = ["lut", "build", "--config", str(CONFIGS / "digits.py"), "--accelerator", "edge_tpu_like",
          "--model", "analytic", "--output", str(output), *TINY]
  code, out, _ = _cli(capsys, *argv)
  ops = len(required_signatures(_space(_config(overrides=TINY))))
  assert code == 0 and f"{ops} ops of this search space ({ops} evaluated, 0 reused)" in out
  assert f"--config.hw.lut={output}" in out
  code, out, _ = _cli(capsys, *argv[:-len(TINY) - 2], "--output", str(output), *TINY)  # auto
  assert code == 0 and f"(0 evaluated, {ops} reused) with analytic-2" in out
  code, out, _ = _cli(capsys, "lut", "show", str(output), "--config", str(CONFIGS / "digits.py"),
                      *TINY)
  assert code == 0 and "accelerator edge_tpu_like" in out and "analytic-2" in out
  assert f"the LUT covers all {ops} ops" in out
  code, out, err = _cli(capsys, "lut", "show", str(output), "--config", str(CONFIGS / "digits.py"))
  assert code == 2 and "lacks" in err and "dnas-ee lut build" in err       # the full digits space
  code, _, err = _cli(capsys, "lut", "show")
  assert code == 2 and "needs a LUT" in err
  code, _, err = _cli(capsys, "lut", "show", str(tmp_path / "nope.json"))
  assert code == 2 and "no LUT at" in err


def test_cli_lut_show_of_a_shipped_lut(capsys):
  code, out, _ = _cli(capsys, "lut", "show", "--accelerator", "quad_core_edge_tpu_like")
  assert code == 0 and "quad_core_edge_tpu_like" in out and "up to date" in out
  assert "zigzag-" in out and "analytic-2" in out        # ZigZag rows; pooling/add/gap analytic


def test_cli_lut_build_writes_the_default_file(private_hwmodels, capsys):
  code, out, _ = _cli(capsys, "lut", "build", "--config", str(CONFIGS / "digits.py"),
                      "--accelerator", "edge_tpu_like", "--model", "analytic", *TINY)
  path = private_hwmodels / "luts" / "edge_tpu_like.analytic.json"
  assert code == 0 and path.is_file() and f"--config.hw.lut={path}" in out


def test_shapes_docstring_example():
  import doctest

  import dnas_ee.data.shapes
  assert doctest.testmod(dnas_ee.data.shapes).failed == 0
