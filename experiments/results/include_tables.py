"""Regenerates the tables a markdown file includes: text between
``<!-- include: PATH -->`` and ``<!-- end include -->`` is replaced by the file PATH
(relative to the repository root), e.g. a sweep's ``table.md`` from ``dnas-ee table --out``.

Run:  python experiments/results/include_tables.py [README.md ...]   (default: README.md)
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


def main(paths) -> None:
  for name in paths or ["README.md"]:
    path = ROOT / name
    before = path.read_text()
    after = include(before)
    path.write_text(after)
    print(f"{name}: {'updated' if after != before else 'unchanged'}")


if __name__ == "__main__":
  main(sys.argv[1:])
