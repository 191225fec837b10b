"""Regenerates the tables a markdown file includes: text between
``<!-- include: PATH -->`` and ``<!-- end include -->`` is replaced by the file PATH
(relative to the repository root), e.g. a sweep's ``table.md`` from ``dnas-ee table --out``.

Run:  python experiments/analysis/include_tables.py [FILE.md ...]
      (default: README.md and every experiments/results/*/README.md)
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"(<!-- include: (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- end include -->)",
                   re.DOTALL)


def include(text: str, root: Path = ROOT) -> str:
  """``text`` with every include block's body replaced by its file's contents.

  Raises:
    FileNotFoundError: an included file is missing (named, with the block).
  """
  def body(match):
    path = root / match["path"]
    if not path.exists():
      raise FileNotFoundError(f"{path} (included by '<!-- include: {match['path']} -->') is "
                              "missing: run the command written beside the block")
    return match[1] + path.read_text().rstrip("\n") + "\n" + match[4]
  return BLOCK.sub(body, text)


def default_files(root: Path = ROOT) -> list[str]:
  """The files whose tables are generated: the README and each results folder's README."""
  results = sorted(p.relative_to(root).as_posix()
                   for p in (root / "experiments" / "results").glob("*/README.md"))
  return ["README.md", *results]


def main(paths) -> None:
  for name in paths or default_files():
    path = ROOT / name
    before = path.read_text()
    after = include(before)
    if after != before:
      path.write_text(after)
    print(f"{name}: {'updated' if after != before else 'unchanged'}")


if __name__ == "__main__":
  main(sys.argv[1:])
