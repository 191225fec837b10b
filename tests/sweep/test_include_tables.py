"""Tables in the READMEs are generated from files: an include block's body becomes the file."""
import importlib.util

import pytest

from support.sweep import ROOT


def _module():
  spec = importlib.util.spec_from_file_location("include_tables",
                                                ROOT / "experiments/analysis/include_tables.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_include_replaces_only_the_block_body(tmp_path):
  include = _module().include
  (tmp_path / "t.md").write_text("| a |\n|---|\n| 1 |\n")
  text = "before\n<!-- include: t.md -->\nold table\n<!-- end include -->\nafter\n"
  out = include(text, tmp_path)
  assert out == "before\n<!-- include: t.md -->\n| a |\n|---|\n| 1 |\n<!-- end include -->\nafter\n"
  assert include(out, tmp_path) == out
  with pytest.raises(FileNotFoundError, match="missing.md"):
    include("<!-- include: missing.md -->\n<!-- end include -->", tmp_path)


def test_generated_tables_are_up_to_date():
  """README.md's headline table and the results folders' tables equal their files
  (otherwise: python experiments/analysis/include_tables.py)."""
  module = _module()
  files = module.default_files()
  assert "README.md" in files and "experiments/results/digits_methods/README.md" in files
  stale = [name for name in files
           if module.include((ROOT / name).read_text()) != (ROOT / name).read_text()]
  assert not stale, f"stale tables in {stale}: run python experiments/analysis/include_tables.py"
