"""The web pages and the HTTP API, served by `replybridge serve` on the web port (docs/ARCHITECTURE.md, "Contract")."""
