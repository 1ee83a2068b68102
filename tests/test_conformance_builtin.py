"""Every built-in in-process resolver runs the shared conformance suite."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tenuo_keys import CompositeKeyResolver, EnvKeyResolver, FileKeyResolver, StaticKeyResolver
from tenuo_keys.testing import ResolverConformance, ResolverHarness


class EnvHarness(ResolverHarness):
    """Keys in the real ``os.environ``, under a prefix unique to the test."""

    binary_values = False  # environment variables hold text

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.prefix = f"TENUO_TEST_{uuid.uuid4().hex[:8]}_"

    def make_resolver(self, *, cache, observers):
        return EnvKeyResolver(self.prefix, cache=cache, observers=observers)

    def put(self, key_id, value):
        self.monkeypatch.setenv(self.prefix + key_id, value)

    def rotate(self, key_id, value):
        old = os.environ[self.prefix + key_id]
        self.monkeypatch.setenv(self.prefix + key_id + "__PREVIOUS", old)
        self.put(key_id, value)


class StaticHarness(ResolverHarness):
    always_in_memory = True
    def __init__(self) -> None:
        self.resolvers: list[StaticKeyResolver] = []
        self.keys: dict[str, bytes | str] = {}

    def make_resolver(self, *, cache, observers):
        resolver = StaticKeyResolver(self.keys, cache=cache, observers=observers)
        self.resolvers.append(resolver)
        return resolver

    def put(self, key_id, value):
        self.keys[key_id] = value
        for resolver in self.resolvers:
            resolver.put(key_id, value)

    def rotate(self, key_id, value):
        for resolver in self.resolvers:
            resolver.rotate(key_id, value)


class CompositeHarness(EnvHarness):
    """Env behind an empty static resolver: every key falls through once."""

    def make_resolver(self, *, cache, observers):
        return CompositeKeyResolver([
            StaticKeyResolver(cache=cache),
            super().make_resolver(cache=cache, observers=observers),
        ])


class FileHarness(ResolverHarness):
    """Key files in a private temporary directory, written as ``tenuo-keys put`` writes them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def make_resolver(self, *, cache, observers):
        return FileKeyResolver(self.directory, cache=cache, observers=observers)

    def put(self, key_id, value):
        path = self.directory / f"{key_id}.key"
        path.write_bytes(value if isinstance(value, bytes) else value.encode())
        path.chmod(0o600)

    def rotate(self, key_id, value):
        path = self.directory / f"{key_id}.key"
        (self.directory / f"{key_id}.key.previous").write_bytes(path.read_bytes())
        (self.directory / f"{key_id}.key.previous").chmod(0o600)
        self.put(key_id, value)


class TestFileConformance(ResolverConformance):
    @pytest.fixture
    def harness(self, tmp_path):
        return FileHarness(tmp_path)


class TestEnvConformance(ResolverConformance):
    @pytest.fixture
    def harness(self, monkeypatch):
        return EnvHarness(monkeypatch)


class TestStaticConformance(ResolverConformance):
    @pytest.fixture
    def harness(self):
        return StaticHarness()


class TestCompositeConformance(ResolverConformance):
    @pytest.fixture
    def harness(self, monkeypatch):
        return CompositeHarness(monkeypatch)
