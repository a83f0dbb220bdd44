"""Tests of bridge/ops/."""
