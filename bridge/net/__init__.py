"""Talking to mail servers: opening connections, SASL, APPEND-once, and turning failures into hints."""
