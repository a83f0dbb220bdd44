"""Helpers the tests share: a bridge on a fresh database, messages, set-up steps, ports, a webhook receiver.

Kept apart from the test modules (as aiosmtpd keeps aiosmtpd/testing/), so no test module imports another.
"""
