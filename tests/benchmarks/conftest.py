"""Prints the benchmarks' table (tests/benchmarks/table.py) after `pytest -m benchmark`."""

from __future__ import annotations

import pytest

from tests.benchmarks import table


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if table.ROWS:
        terminalreporter.section("benchmarks: every figure measured in this run")
        terminalreporter.write_line(table.markdown())
