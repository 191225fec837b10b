"""LUTs: round trip, build cache, malformed files (fuzzed), missing ops, stale LUTs, CSV import."""
from __future__ import annotations

import copy
import json

import hypothesis.strategies as st
import pytest
from hw_tiny_accelerator import TINY_YAML, write_tiny
from hypothesis import HealthCheck, given, settings

import dnas_ee.hw.lut.build as lut_module
from dnas_ee.hw.accelerators.load import load_accelerator
from dnas_ee.hw.lut.build import build_lut
from dnas_ee.hw.lut.format import Lut, LutError, format_lut_table, load_lut, parse_lut, save_lut
from dnas_ee.hw.lut.measured_csv import import_measured_csv
from dnas_ee.hw.models.analytic import evaluate_analytic
from dnas_ee.space.signature import OpSignature

SIGS = [OpSignature("conv", 4, 4, 2, 4, kernel=3), OpSignature("conv", 4, 4, 2, 4, kernel=3,
                                                                 w_bits=4, a_bits=4),
        OpSignature("dense", 1, 1, 64, 32), OpSignature("maxpool", 4, 4, 2, 2, kernel=2, stride=2),
        OpSignature("conv", 8, 8, 4, 4, kernel=3, groups=4, w_bits=2, a_bits=2)]
HINT = "dnas-ee lut build --config experiments/configs/digits.py --accelerator tiny"


def _build(acc, sigs=SIGS, **kwargs):
  kwargs = {"model": "analytic", "workers": 1, "progress": False, **kwargs}
  return build_lut(sigs, acc, **kwargs)


def test_build_matches_model_and_round_trips(tiny, tmp_path):
  lut = _build(tiny, SIGS + SIGS[:2], space_signature="space-abc")
  assert lut.keys() == [s.key() for s in SIGS]                   # duplicates evaluated once
  assert lut.build_stats.evaluated == len(SIGS) and lut.build_stats.reused == 0
  for sig in SIGS:
    assert lut.lookup(sig) == evaluate_analytic(sig, tiny)
  assert (lut.model_name, lut.model_version) == ("analytic", "2")
  assert lut.accelerator == "tiny" and lut.accelerator_hash == tiny.description_hash
  saved = save_lut(lut, tmp_path / "sub" / "tiny.json")
  loaded = load_lut(tmp_path / "sub" / "tiny.json")
  assert loaded == saved and loaded.rows == lut.rows and loaded.space_signature == "space-abc"
  data = json.loads((tmp_path / "sub" / "tiny.json").read_text())
  assert data["format"] == "dnas-ee-lut" and data["version"] == 1
  assert data["model"] == {"name": "analytic", "version": "2"}
  assert set(data["rows"][0]) == {"op", "macs", "cycles", "latency_s", "energy_j", "model"}
  loaded.check_accelerator(tiny)
  arrays = loaded.arrays(SIGS[::-1])
  assert arrays["energy_j"][0] == lut.lookup(SIGS[-1]).energy_j and arrays["macs"].dtype.kind == "f"


def test_build_cache_evaluates_only_new_ops(tiny, tmp_path, monkeypatch):
  calls = []

  def counting(sig, acc):
    calls.append(sig.key())
    return evaluate_analytic(sig, acc)

  monkeypatch.setattr(lut_module, "evaluate_analytic", counting)
  cache = tmp_path / "cache.json"
  first = _build(tiny, SIGS[:3], cache_path=cache)
  assert (first.build_stats.evaluated, first.build_stats.reused) == (3, 0) and len(calls) == 3
  second = _build(tiny, SIGS, cache_path=cache)          # a config change adds two ops
  assert (second.build_stats.evaluated, second.build_stats.reused) == (2, 3)
  assert calls[3:] == [s.key() for s in SIGS[3:]]
  third = _build(tiny, SIGS[1:4], cache_path=cache)      # and removes some: nothing to evaluate
  assert (third.build_stats.evaluated, third.build_stats.reused) == (0, 3) and len(calls) == 5
  assert third.keys() == [s.key() for s in SIGS[1:4]]
  assert len(load_lut(cache)) == len(SIGS)               # the cache keeps the union
  for sig in SIGS:
    assert second.lookup(sig) == evaluate_analytic(sig, tiny)


def test_build_cache_of_another_accelerator_is_not_reused(tiny, tmp_path, capsys):
  cache = tmp_path / "cache.json"
  _build(tiny, SIGS, cache_path=cache)
  (tmp_path / "other").mkdir()
  other = load_accelerator(write_tiny(tmp_path / "other",
                                      TINY_YAML.replace("mac_energy: 1 pJ", "mac_energy: 2 pJ")))
  rebuilt = _build(other, SIGS, cache_path=cache, progress=True)
  assert rebuilt.build_stats.evaluated == len(SIGS) and rebuilt.build_stats.reused == 0
  assert "evaluating every op" in capsys.readouterr().err
  assert load_lut(cache).accelerator_hash == other.description_hash


def test_corrupt_cache_is_an_error(tiny, tmp_path):
  cache = tmp_path / "cache.json"
  cache.write_text("{not json")
  with pytest.raises(LutError, match="delete it"):
    _build(tiny, SIGS, cache_path=cache)


def test_process_pool_gives_the_same_rows(tiny):
  assert _build(tiny, SIGS, workers=2).rows == _build(tiny, SIGS).rows


def test_progress_reports_counts(tiny, tmp_path, capsys):
  _build(tiny, SIGS[:2], cache_path=tmp_path / "c.json", progress=True)
  _build(tiny, SIGS[:3], cache_path=tmp_path / "c.json", progress=True)
  assert "1 ops evaluated, 2 reused" in capsys.readouterr().err


def test_missing_op_names_op_and_build_command(tiny):
  lut = _build(tiny, SIGS[:2])
  with pytest.raises(LutError) as info:
    lut.require(SIGS, build_hint=HINT)
  message = str(info.value)
  assert SIGS[2].key() in message and SIGS[4].key() in message
  assert "lacks 3 of the 5 ops" in message and HINT in message
  with pytest.raises(LutError, match=SIGS[3].key()):
    lut.lookup(SIGS[3])
  with pytest.raises(LutError, match="lacks 1"):
    lut.arrays(SIGS[:3], build_hint=HINT)
  lut.require(SIGS[:2], build_hint=HINT)


def test_many_missing_ops_are_summarized(tiny):
  lut = _build(tiny, SIGS[:1])
  wanted = [OpSignature("conv", 4, 4, 2, c) for c in range(1, 20)]
  with pytest.raises(LutError, match=r"lacks 19 of the 19 ops.* and 14 more\. Build it with"):
    lut.require(wanted, build_hint=HINT)


def test_stale_lut_is_detected(tiny, tmp_path):
  lut = _build(tiny)
  (tmp_path / "new").mkdir()
  changed = load_accelerator(write_tiny(tmp_path / "new",
                                        TINY_YAML.replace("lanes: 4", "lanes: 8")))
  with pytest.raises(LutError, match="stale"):
    lut.check_accelerator(changed)


def test_format_lut_table(tiny):
  text = format_lut_table(_build(tiny))
  lines = text.splitlines()
  assert "accelerator tiny" in lines[1] and "analytic-2" in lines[1]
  assert lines[2].split() == ["op", "MACs", "cycles", "latency", "(us)", "energy", "(uJ)", "model"]
  assert any(line.startswith(SIGS[0].key()) and "1,152" in line for line in lines)
  assert len(lines) == 4 + len(SIGS)


# --------------------------------------------------------------------------- malformed files

def _valid(tiny) -> dict:
  return _build(tiny).to_json()


def _set(path, value):
  def mutate(d):
    node = d
    for k in path[:-1]:
      node = node[k]
    node[path[-1]] = value
  return mutate


def _delete(path):
  def mutate(d):
    node = d
    for k in path[:-1]:
      node = node[k]
    del node[path[-1]]
  return mutate


MALFORMED = {
    "missing format": (_delete(["format"]), "missing top-level field 'format'"),
    "missing rows": (_delete(["rows"]), "'rows'"),
    "unknown field": (_set(["extra"], 1), "unknown top-level field 'extra'"),
    "wrong format": (_set(["format"], "zigzag-lut"), "not a dnas-ee LUT"),
    "future version": (_set(["version"], 2), "version 2 is not supported"),
    "version as string": (_set(["version"], "1"), "not supported"),
    "version as bool": (_set(["version"], True), "not supported"),
    "bad hash": (_set(["accelerator_hash"], "abc"), "sha256"),
    "empty accelerator": (_set(["accelerator"], ""), "accelerator is empty"),
    "model as string": (_set(["model"], "analytic"), "model ="),
    "bad date": (_set(["created"], "yesterday"), "ISO 8601"),
    "rows not list": (_set(["rows"], {}), "not a list"),
    "row not object": (_set(["rows", 0], 3), "rows[0] is a int"),
    "row missing field": (_delete(["rows", 1, "energy_j"]), "rows[1] lacks the field 'energy_j'"),
    "row unknown field": (_set(["rows", 0, "power_w"], 1.0), "unknown field 'power_w'"),
    "malformed op": (_set(["rows", 0, "op"], "conv3x3"), "malformed op signature key"),
    "non-canonical op": (_set(["rows", 0, "op"], "conv_h04_w4_ci2_co4_k3_s1_g1_wb8_ab8"),
                         "not a canonical"),
    "impossible op": (_set(["rows", 0, "op"], "conv_h4_w4_ci3_co4_k3_s1_g2_wb8_ab8"), "groups"),
    "wrong macs": (_set(["rows", 0, "macs"], 7), "MACs"),
    "float macs": (_set(["rows", 0, "macs"], 1152.0), "MACs"),
    "negative cycles": (_set(["rows", 0, "cycles"], -1.0), "must be finite and >= 0"),
    "string energy": (_set(["rows", 2, "energy_j"], "1e-9"), "is not a number"),
    "bool latency": (_set(["rows", 2, "latency_s"], True), "is not a number"),
    "unknown model": (_set(["rows", 0, "model"], "guess"), "not one of"),
    "duplicated op": (lambda d: d["rows"].append(copy.deepcopy(d["rows"][0])), "appears twice"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_lut_files(tiny, tmp_path, case):
  mutate, words = MALFORMED[case]
  data = _valid(tiny)
  mutate(data)
  path = tmp_path / "bad.json"
  path.write_text(json.dumps(data))
  with pytest.raises(LutError) as info:
    load_lut(path)
  assert str(path) in str(info.value) and words in str(info.value)


@pytest.mark.parametrize("text, words", [
    ("", "not valid JSON"), ("{\"format\": ", "not valid JSON"), ("[1, 2]", "not a JSON object"),
    ("\x00\x01binary", "not valid JSON"), ("NaN", "non-finite")])
def test_unreadable_lut_files(tmp_path, text, words):
  path = tmp_path / "bad.json"
  path.write_text(text)
  with pytest.raises(LutError, match=words):
    load_lut(path)


def test_non_finite_numbers_in_text_are_rejected(tiny, tmp_path):
  text = json.dumps(_valid(tiny)).replace('"energy_j": ', '"energy_j": Infinity, "x": ', 1)
  path = tmp_path / "bad.json"
  path.write_text(text)
  with pytest.raises(LutError, match="non-finite"):
    load_lut(path)
  with pytest.raises(LutError, match="cannot read"):
    load_lut(tmp_path / "absent.json")


ROW_FIELDS = ["op", "macs", "cycles", "latency_s", "energy_j", "model"]
BAD = [None, -1, -0.5, "x", [], {}, True, 1e400, "1", 2.5]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_rows_raise_lut_error(tiny, data):
  lut = _valid(tiny)
  row = data.draw(st.integers(0, len(lut["rows"]) - 1))
  field = data.draw(st.sampled_from(ROW_FIELDS))
  value = data.draw(st.sampled_from(BAD))
  lut["rows"][row][field] = value
  if field in ("cycles", "latency_s", "energy_j") and value == 2.5:
    assert parse_lut(lut)                                   # a plausible number is fine
    return
  with pytest.raises(LutError):
    parse_lut(lut)


# --------------------------------------------------------------------------- measured CSV

CSV = """\
# measured on the bench, 1000 runs each
op,latency_s,energy_j,macs
conv_h4_w4_ci2_co4_k3_s1_g1_wb8_ab8,2.5e-6,1.1e-7,1152
dense_h1_w1_ci64_co32_k1_s1_g1_wb8_ab8,1.0e-6,3e-8,
"""


def test_import_measured_csv(tiny_path, tmp_path):
  path = tmp_path / "m.csv"
  path.write_text(CSV)
  lut = import_measured_csv(path, str(tiny_path))
  row = lut.lookup("conv_h4_w4_ci2_co4_k3_s1_g1_wb8_ab8")
  assert row.model == "measured" and row.latency_s == 2.5e-6 and row.energy_j == 1.1e-7
  assert row.cycles == pytest.approx(2500)           # latency x 1 GHz
  assert lut.lookup(OpSignature("dense", 1, 1, 64, 32)).macs == 2048
  assert lut.model_name == "measured"
  lut.check_accelerator(load_accelerator(tiny_path))
  assert load_lut(save_lut(lut, tmp_path / "m.json").path).rows == lut.rows


def test_import_measured_csv_without_description(tmp_path):
  path = tmp_path / "m.csv"
  path.write_text("op,latency_s,energy_j,cycles\nadd_h2_w2_ci8_co8_k1_s1_g1_wb8_ab8,1e-7,1e-9,50\n")
  lut = import_measured_csv(path, "coral_usb_stick")
  assert lut.accelerator == "coral_usb_stick" and lut.accelerator_hash == ""
  saved = save_lut(lut, tmp_path / "m.json")
  assert load_lut(saved.path).rows == lut.rows
  with pytest.raises(LutError, match="no accelerator description"):
    lut.check_accelerator(load_accelerator("edge_tpu_like"))


@pytest.mark.parametrize("text, words", [
    ("op,latency_s\nx,1\n", "missing column 'energy_j'"),
    ("op,latency_s,energy_j,power\n", "unknown or repeated column 'power'"),
    ("op,latency_s,energy_j\n", "no data rows"),
    ("# only a comment\n", "no header row"),
    ("op,latency_s,energy_j\nconv3x3,1,1\n", "line 2: malformed op signature key"),
    ("op,latency_s,energy_j\nadd_h2_w2_ci8_co8_k1_s1_g1_wb8_ab8,fast,1\n", "line 2: latency_s='fast'"),
    ("op,latency_s,energy_j\nadd_h2_w2_ci8_co8_k1_s1_g1_wb8_ab8,1,-1\n", "must be finite and >= 0"),
    ("op,latency_s,energy_j\nadd_h2_w2_ci8_co8_k1_s1_g1_wb8_ab8,1,nan\n", "must be finite"),
    ("op,latency_s,energy_j\nadd_h2_w2_ci8_co8_k1_s1_g1_wb8_ab8,1\n", "2 values for 3 columns"),
    ("op,latency_s,energy_j,macs\nconv_h4_w4_ci2_co4_k3_s1_g1_wb8_ab8,1,1,99\n", "1152 MACs"),
    ("op,latency_s,energy_j\nadd_h2_w2_ci8_co8_k1_s1_g1_wb8_ab8,1,1\n"
     "add_h2_w2_ci8_co8_k1_s1_g1_wb8_ab8,1,1\n", "line 3: op add_h2_w2_ci8_co8_k1_s1_g1_wb8_ab8 was"),
])
def test_bad_measured_csv(tiny_path, tmp_path, text, words):
  path = tmp_path / "m.csv"
  path.write_text(text)
  with pytest.raises(LutError) as info:
    import_measured_csv(path, str(tiny_path))
  assert str(path) in str(info.value) and words in str(info.value)


def test_lut_is_a_frozen_dataclass(tiny):
  lut = _build(tiny, SIGS[:1])
  with pytest.raises(Exception):
    lut.accelerator = "x"
  assert isinstance(lut, Lut)


def test_default_workers_only_start_a_pool_for_long_builds(tiny):
  assert lut_module._default_workers("analytic", False, 5000) == 1
  assert lut_module._default_workers("zigzag", False, 100) == 1
  assert lut_module._default_workers("zigzag", True, 100) >= 1
  with pytest.raises(ValueError, match="workers=-1"):
    _build(tiny, SIGS, workers=-1)
