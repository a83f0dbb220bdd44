"""Tests of bridge/inbound/."""
