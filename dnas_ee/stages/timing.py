"""``timing.json``: the wall-clock a run's stages spent (``search_s``, ``derive_s``),
which ``summary.json`` reports as the method's search cost."""
from __future__ import annotations

import json
from pathlib import Path

from dnas_ee.train import loop

TIMING_FILE = "timing.json"


def record_time(workdir, key: str, seconds: float) -> None:
  path = Path(workdir) / TIMING_FILE
  times = json.loads(path.read_text()) if path.exists() else {}
  times[key] = round(seconds, 3)
  path.write_text(json.dumps(times))


def read_times(workdir) -> dict:
  path = Path(workdir) / TIMING_FILE
  return json.loads(path.read_text()) if path.exists() else {}


def searched_seconds(workdir) -> float:
  """Search wall-clock already spent in ``workdir`` up to its latest checkpoint (0.0 fresh)."""
  steps = sorted(int(p.name) for p in (Path(workdir) / "checkpoints" / "search").glob("[0-9]*"))
  return loop.logged_seconds(Path(workdir) / "search_metrics.jsonl", steps[-1]) if steps else 0.0


def with_timing(summary: dict, workdir) -> dict:
  """Adds ``search_s``, the method's search wall-clock (supernet training + selection;
  0 for static and hand_placed), to ``summary.json``."""
  times = read_times(workdir)
  summary["timing"] = times
  summary["search_s"] = round(times.get("search_s", 0.0) + times.get("derive_s", 0.0), 3)
  (Path(workdir) / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
  return summary
