"""Tests of bridge/cli/."""
