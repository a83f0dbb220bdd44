"""Signed webhooks for the applicant tracking system: subscriptions, the outbox, dispatch."""
