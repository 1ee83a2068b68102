"""Fixtures for the aws service (filled in by its backend work)."""

__all__: list[str] = []
