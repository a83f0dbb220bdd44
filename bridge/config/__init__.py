"""The installation's settings, read in one typed place: the environment, then the TOML file that
REPLYBRIDGE_CONFIG names, then the defaults (docs/ARCHITECTURE.md, "Settings").

`settings.py` is the typed model every part of the service reads; `file.py` is the same sources read with
the standard library alone, for the one command that must start in a blink (`ingest`, once per message)."""
