"""Tests of bridge/privacy/."""
