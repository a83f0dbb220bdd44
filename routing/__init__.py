"""Pure decisions, no I/O: numbered addresses, Message-IDs, classification and routing.

Never imports bridge/ or models/: everything here is testable in microseconds.
"""
