"""Tests of bridge/web/."""
