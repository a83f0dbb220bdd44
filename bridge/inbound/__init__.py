"""Inbound mail: the sources, storing first, the pipeline, the steps after routing, triage."""
