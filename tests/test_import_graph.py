"""The library's layers only point down: no import cycle in ``dnas_ee``, counting every
import statement (function-level ones included, which hide a cycle from Python but
not from a reader).

Two graphs, both read with ``ast`` from the source, never by importing it:

- between modules: every module of ``dnas_ee`` is a node (a package is its
  ``__init__``), relative imports resolved, ``from P import m`` an edge to the
  module ``P.m`` when there is one, else to ``P``; no cycle between any two modules;
- between layers: each subpackage (``dnas_ee.cost``) or top-level module
  (``dnas_ee.pipeline``) is one node; imports inside one node are not edges.
  Layers (README, *Layout*): ``space``, ``relax``, ``quant`` (and ``data``,
  ``errors``) <- ``cost``, ``models``, ``hw`` <- ``train``, ``exits`` <- ``stages``,
  ``pipeline`` <- ``cli``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dnas_ee

ROOT = Path(dnas_ee.__file__).parent

# Edges known to close a cycle, each with the reason it is still here. Empty: keep it so.
ALLOWED_EDGES: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
  parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(module: str) -> bool:
  return MODULES[module].name == "__init__.py"


def _node(module: str) -> str:
  """The layer of a module: ``dnas_ee.X`` for anything under ``dnas_ee/X``."""
  parts = module.split(".")
  return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def _imports_in(text: str, module: str, is_package: bool, filename: str = "<text>"):
  """``(module, line)`` for every module that the source ``text`` of ``module`` imports,
  anywhere in it.

  ``import a.b`` names ``a.b``; ``from a import b`` names ``a.b`` if that is a module of
  ``dnas_ee``, else ``a``; relative imports are resolved against ``module``'s package.
  A ``dnas_ee`` name that is no module is yielded as it is (the test of unresolved
  imports reports it).
  """
  package = module if is_package else module.rsplit(".", 1)[0]
  for stmt in ast.walk(ast.parse(text, filename)):
    if isinstance(stmt, ast.Import):
      for alias in stmt.names:
        yield alias.name, stmt.lineno
    elif isinstance(stmt, ast.ImportFrom):
      base = stmt.module or ""
      if stmt.level:
        anchor = package.split(".")
        anchor = anchor[:len(anchor) - (stmt.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
      for alias in stmt.names:
        candidate = f"{base}.{alias.name}"
        yield (candidate if candidate in MODULES else base), stmt.lineno


def _imports(path: Path):
  return _imports_in(path.read_text(), _module_name(path), path.name == "__init__.py", str(path))


def _ours(name: str) -> bool:
  return name == "dnas_ee" or name.startswith("dnas_ee.")


def module_graph() -> dict[str, dict[str, list[str]]]:
  """module -> imported module -> where (``file:line``); every module of ``dnas_ee``."""
  graph: dict[str, dict[str, list[str]]] = {}
  for source, path in MODULES.items():
    edges = graph.setdefault(source, {})
    for target, line in _imports(path):
      where = f"{path.relative_to(ROOT.parent)}:{line}"
      if _ours(target) and target in MODULES and target != source and \
          where not in edges.get(target, ()):
        edges.setdefault(target, []).append(where)
  return graph


def import_graph() -> dict[str, dict[str, list[str]]]:
  """layer -> imported layer -> where (``file:line``)."""
  graph: dict[str, dict[str, list[str]]] = {}
  for source, edges in module_graph().items():
    node = graph.setdefault(_node(source), {})
    for target, where in edges.items():
      if _node(target) != _node(source):
        node.setdefault(_node(target), []).extend(where)
  return graph


def _cycles(graph, allowed=frozenset()) -> list[list[str]]:
  """The strongly connected components with more than one node (Tarjan, iterative)."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []
  for root in sorted(graph):
    if root in index:
      continue
    work = [(root, iter(sorted(graph.get(root, {}))))]
    index[root] = low[root] = len(index)
    stack.append(root)
    on_stack.add(root)
    while work:
      v, children = work[-1]
      for w in children:
        if (v, w) in allowed:
          continue
        if w not in index:
          index[w] = low[w] = len(index)
          stack.append(w)
          on_stack.add(w)
          work.append((w, iter(sorted(graph.get(w, {})))))
          break
        if w in on_stack:
          low[v] = min(low[v], index[w])
      else:
        work.pop()
        if work:
          low[work[-1][0]] = min(low[work[-1][0]], low[v])
        if low[v] == index[v]:
          component = []
          while True:
            w = stack.pop()
            on_stack.discard(w)
            component.append(w)
            if w == v:
              break
          if len(component) > 1:
            out.append(sorted(component))
  return out


def _describe(graph, cycles, allowed=frozenset()) -> str:
  lines = []
  for component in cycles:
    lines.append("  cycle: " + ", ".join(component))
    for a in component:
      for b, where in sorted(graph[a].items()):
        if b in component and (a, b) not in allowed:
          lines.append(f"    {a} -> {b} ({', '.join(where)})")
  return "\n".join(lines)


def test_no_import_cycles_between_subpackages():
  graph = import_graph()
  cycles = _cycles(graph, ALLOWED_EDGES)
  assert not cycles, ("import cycles between dnas_ee subpackages:\n"
                      + _describe(graph, cycles, ALLOWED_EDGES))


def test_no_import_cycle_between_any_two_modules():
  """Inside a package too: ``hw/lut/measure.py`` <-> ``hw/lut/space.py`` through imports
  inside functions was one; a module importing the face of its own package, whose
  ``__init__`` imports it back, another."""
  graph = module_graph()
  cycles = _cycles(graph)
  assert not cycles, "import cycles between dnas_ee modules:\n" + _describe(graph, cycles)


def test_no_module_imports_the_face_of_its_own_package():
  """A module inside ``dnas_ee.hw`` imports its siblings, never ``dnas_ee.hw`` itself:
  the face re-exports them, so it would depend on the order the face imports them in.
  (The root package's face is exempt: ``dnas_ee.cli`` reads ``dnas_ee.__version__``,
  and the root face imports no entry point.)"""
  bad = [f"{source} -> {target} ({', '.join(where)})"
         for source, edges in module_graph().items() for target, where in edges.items()
         if target != "dnas_ee" and _is_package(target) and source.startswith(target + ".")]
  assert not bad, "modules that import the face of a package they live in:\n" + "\n".join(bad)


def test_every_import_of_dnas_ee_names_a_module_that_exists():
  """A function-level import of a moved module fails only when that function runs."""
  missing = [f"{path.relative_to(ROOT.parent)}:{line}: {target}"
             for path in MODULES.values() for target, line in _imports(path)
             if _ours(target) and target not in MODULES]
  assert not missing, "imports of dnas_ee modules that do not exist:\n" + "\n".join(missing)


def test_the_library_never_imports_the_stages_or_the_cli():
  """Only the CLI and the sweep runner (between the CLI and the pipeline) drive the
  pipeline; the library below it never reaches up."""
  graph = import_graph()
  above = {"dnas_ee.pipeline": {"dnas_ee.cli", "dnas_ee.sweep"}, "dnas_ee.cli": set(),
           "dnas_ee.sweep": {"dnas_ee.cli"},
           "dnas_ee.stages": {"dnas_ee.pipeline", "dnas_ee.cli", "dnas_ee.sweep"}}
  bad = [f"{a} -> {b} ({', '.join(where)})" for a, edges in graph.items()
         for b, where in edges.items() if b in above and a not in above[b] and a != "dnas_ee"]
  assert not bad, "modules that import a layer above them:\n" + "\n".join(bad)


def test_the_graph_sees_function_level_imports():
  """The scanner counts an import inside a function (a cycle Python would not notice)."""
  assert "dnas_ee.hw" in import_graph()["dnas_ee.train"]  # build_cost_source, in a function


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}, "d": {"a": []}}, [["a", "b", "c"]]),
    ({"a": {"b": []}, "b": {}, "c": {"c": []}}, []),
    ({"a": {"b": []}, "b": {"a": []}, "c": {"d": []}, "d": {"c": []}}, [["a", "b"], ["c", "d"]]),
])
def test_the_cycle_finder(graph, expected):
  assert sorted(_cycles(graph)) == expected


def test_the_scanner_resolves_modules_packages_and_relative_imports():
  """``from dnas_ee.hw.models import zigzag_model`` is the module; ``from dnas_ee.hw import
  lut_cost_source`` (a name) the package's ``__init__``; ``from .format import Lut`` the
  sibling module."""
  text = ("from dnas_ee.hw.models import zigzag_model\n"
          "from dnas_ee.hw import lut_cost_source\n"
          "def f():\n"
          "  from .format import Lut\n"
          "  from .. import lut\n"
          "  import dnas_ee.hw.lut.space\n")
  found = list(_imports_in(text, "dnas_ee.hw.lut.probe", is_package=False))
  assert found == [("dnas_ee.hw.models.zigzag_model", 1), ("dnas_ee.hw", 2),
                   ("dnas_ee.hw.lut.format", 4), ("dnas_ee.hw.lut", 5),
                   ("dnas_ee.hw.lut.space", 6)]
