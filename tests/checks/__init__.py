"""Tests of bridge/checks/."""
