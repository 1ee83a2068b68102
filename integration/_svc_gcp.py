"""Fixtures for the gcp service (filled in by its backend work)."""

__all__: list[str] = []
