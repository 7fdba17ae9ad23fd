"""`make simulate` runs end to end: readers through the API, training, the offline table."""

from __future__ import annotations

import json
from pathlib import Path

from bench import simulate
from recommender.evaluation import DEFAULT_RANKERS


def test_a_small_simulation_logs_trains_and_evaluates(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    args = ["--generated", "--articles", "400", "--readers", "40", "--rounds", "3"]
    args += ["--no-ab", "--out", str(tmp_path / "mind"), "--json", str(figures)]
    assert simulate.main(args) == 0
    found = json.loads(figures.read_text())
    assert found["readers"] == 40 and found["logging"]["impressions"] > 0
    assert found["training"]["events"] > found["logging"]["impressions"]
    assert set(found["offline"]) == {*DEFAULT_RANKERS, "learned"}
    for name in ("news.tsv", "behaviors.tsv", "follows.tsv"):
        assert (tmp_path / "mind" / name).stat().st_size > 0
