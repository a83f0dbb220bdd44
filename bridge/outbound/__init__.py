"""Outbound mail: compose, queue, claim, send, and file the exact bytes in the Sent folder."""
