"""Tests of bridge/web/api/."""
