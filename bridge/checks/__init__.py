"""Checks an admin runs: Test connection (connection_check) and the loop probe (loop_probe)."""
