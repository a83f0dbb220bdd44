"""Candidates' personal data: how long it is kept (retention), erasing or exporting one candidate's mail on
request, with the receipts that prove it. Between checks and ops: ops runs the daily retention job."""
