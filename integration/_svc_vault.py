"""Fixtures for the vault service (filled in by its backend work)."""

__all__: list[str] = []
