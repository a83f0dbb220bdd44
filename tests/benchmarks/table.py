"""The benchmarks' table: each goal test adds its row, and `pytest -m benchmark` prints them as one
Markdown table at the end (tests/benchmarks/conftest.py), the README's table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    work: str
    baseline: str  # what the baseline is and what it measured, in this run
    ours: str
    ratio: str
    goal: str
    met: bool


ROWS: list[Row] = []


def record(work: str, baseline: str, ours: str, ratio: str, goal: str, met: bool) -> bool:
    """Add the row; returns `met`, for the test to assert after its row is in the table."""
    ROWS.append(Row(work, baseline, ours, ratio, goal, met))
    return met


def markdown() -> str:
    lines = ["| work | baseline in the same run | replybridge | ratio | goal | met |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.work} | {r.baseline} | {r.ours} | {r.ratio} | {r.goal} | {'yes' if r.met else 'NO'} |"
              for r in ROWS]
    return "\n".join(lines)
