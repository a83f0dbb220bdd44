"""Tests of bridge/outbound/."""
