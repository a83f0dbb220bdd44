"""Where the shared corpus of real-world messages lies: beside the repository, never copied into it.
Tests that use it skip with the reason where it is absent."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
