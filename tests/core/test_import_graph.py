"""The library's layers only point down: no import cycle between ``dnas_ee``'s
subpackages and top-level modules, counting every import statement (function-level
ones included, which hide a cycle from Python but not from a reader).

Layers (README, *Layout*): ``space``, ``relax``, ``quant`` (and ``data``, ``errors``)
<- ``cost``, ``models``, ``hw`` <- ``train``, ``exits`` <- ``stages``, ``pipeline``
<- ``cli``. Each node is a subpackage (``dnas_ee.cost``) or a top-level module
(``dnas_ee.pipeline``); imports inside one node are not edges.
"""
from __future__ import annotations

import ast
from pathlib import Path

import dnas_ee

ROOT = Path(dnas_ee.__file__).parent

# Edges known to close a cycle, each with the reason it is still here. Empty: keep it so.
ALLOWED_EDGES: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
  parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(parts)


def _node(module: str) -> str:
  """The graph node of a module: ``dnas_ee.X`` for anything under ``dnas_ee/X``."""
  parts = module.split(".")
  return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def _imports(path: Path):
  """Every ``dnas_ee`` module imported anywhere in ``path`` (with its line)."""
  module = _module_name(path)
  package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
  for stmt in ast.walk(ast.parse(path.read_text(), str(path))):
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
        is_module = (ROOT.parent / Path(*candidate.split("."))).with_suffix(".py").exists() or \
            (ROOT.parent / Path(*candidate.split("."))).is_dir()
        yield (candidate if is_module else base), stmt.lineno


def import_graph() -> dict[str, dict[str, list[str]]]:
  """node -> imported node -> where (``file:line``)."""
  graph: dict[str, dict[str, list[str]]] = {}
  for path in sorted(ROOT.rglob("*.py")):
    source = _node(_module_name(path))
    graph.setdefault(source, {})
    for target, line in _imports(path):
      if target != "dnas_ee" and not target.startswith("dnas_ee."):
        continue
      target = _node(target)
      if target != source:
        graph[source].setdefault(target, []).append(f"{path.relative_to(ROOT.parent)}:{line}")
  return graph


def _cycles(graph) -> list[list[str]]:
  """The strongly connected components with more than one node (Tarjan)."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph.get(v, {}):
      if (v, w) in ALLOWED_EDGES:
        continue
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
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

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def test_no_import_cycles_between_subpackages():
  graph = import_graph()
  cycles = _cycles(graph)
  detail = []
  for component in cycles:
    for a in component:
      for b, where in graph[a].items():
        if b in component and (a, b) not in ALLOWED_EDGES:
          detail.append(f"  {a} -> {b} ({', '.join(where)})")
  assert not cycles, "import cycles between dnas_ee subpackages:\n" + "\n".join(detail)


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


def test_the_graph_sees_function_level_imports(tmp_path):
  """The scanner counts an import inside a function (a cycle Python would not notice)."""
  graph = import_graph()
  assert "dnas_ee.hw" in graph["dnas_ee.train"]    # build_cost_source imports hw in a function
