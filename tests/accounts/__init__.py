"""Tests of bridge/accounts/."""
