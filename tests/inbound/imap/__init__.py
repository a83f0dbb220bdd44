"""Tests of bridge/inbound/imap/."""
