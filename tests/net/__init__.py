"""Tests of bridge/net/."""
