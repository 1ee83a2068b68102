"""``FileKeyResolver`` without services: URLs, permissions, key ids, rotation, writing.

The shared conformance suite runs it too (``test_conformance_builtin.py``);
Kubernetes' atomic writer under concurrent reads, and a Temporal run through a
rotation, are in ``integration/test_file_resolver.py``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import tenuo_core

from tenuo_keys import (
    FileKeyResolver,
    KeyAccessDenied,
    KeyNotFound,
    KeyResolutionError,
    ResolverConfigError,
    encode_signing_key,
    resolver_from_url,
)


def write_key(directory: Path, name: str, key: object, mode: int = 0o600) -> Path:
    path = directory / name
    path.write_text(encode_signing_key(key))
    path.chmod(mode)
    return path


def public(key: object) -> bytes:
    return bytes(key.public_key_bytes())  # type: ignore[attr-defined]


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    tmp_path.chmod(0o700)
    return tmp_path


def test_a_key_readable_by_group_or_others_is_refused_as_ssh_does(directory: Path) -> None:
    key = tenuo_core.SigningKey.generate()
    write_key(directory, "agent1.key", key, mode=0o644)
    with pytest.raises(KeyAccessDenied) as refused:
        asyncio.run(FileKeyResolver(directory).resolve("agent1"))
    message = str(refused.value)
    assert "mode 0644" in message and "defaultMode: 0400" in message
    assert "allow_insecure_permissions" in message and not refused.value.retryable
    assert encode_signing_key(key) not in message
    allowed = FileKeyResolver(directory, allow_insecure_permissions=True)
    assert public(asyncio.run(allowed.resolve("agent1"))) == public(key)


@pytest.mark.parametrize(("url", "directory_", "file_name", "insecure"), [
    ("file:///var/run/tenuo/{key_id}.key", "/var/run/tenuo", "agent1.key", False),
    ("file:///var/run/tenuo", "/var/run/tenuo", "agent1.key", False),
    ("file:///etc/creds/tenuo-{key_id}.pem?allow_insecure_permissions=1", "/etc/creds",
     "tenuo-agent1.pem", True),
])
def test_urls(url: str, directory_: str, file_name: str, insecure: bool) -> None:
    resolver = resolver_from_url(url)
    assert isinstance(resolver, FileKeyResolver)
    assert str(resolver.directory) == directory_
    assert resolver.template.render("agent1") == file_name
    assert resolver.allow_insecure_permissions is insecure


@pytest.mark.parametrize("url", [
    "file://host/var/keys/{key_id}.key",       # a host
    "file:///var/keys/{key_id}/x.key",         # the key id in a directory name
    "file:///var/keys/{key_id}{key_id}",       # twice
    "file:///var/keys/{key_id}.key?colour=1",  # an unknown parameter
])
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ResolverConfigError):
        resolver_from_url(url)


def test_a_relative_directory_is_refused() -> None:
    with pytest.raises(ResolverConfigError, match="must be absolute"):
        FileKeyResolver("keys")


@pytest.mark.parametrize("key_id", ["../agent1", "a/b", ".hidden", "..", "..data"])
def test_key_ids_never_leave_the_directory(tmp_path: Path, key_id: str) -> None:
    # A key waits one level up: "../agent1" would find it if ids were not refused.
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o700)
    write_key(tmp_path, "agent1.key", tenuo_core.SigningKey.generate())
    with pytest.raises(KeyResolutionError) as refused:
        FileKeyResolver(directory).fetch(key_id)
    assert not isinstance(refused.value, KeyNotFound) and not refused.value.retryable
    assert "invalid key id for a file" in str(refused.value)


def test_a_rotation_keeps_the_replaced_key_for_its_holder(directory: Path) -> None:
    old, new = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    write_key(directory, "agent1.key", old)
    resolver = FileKeyResolver(directory)
    assert [v.version for v in resolver.fetch("agent1")] == ["current"]
    write_key(directory, ".tmp", new)
    os.replace(directory / ".tmp", directory / "agent1.key")  # a new file: a rotation
    versions = resolver.fetch("agent1")
    assert [v.version for v in versions] == ["current", "previous"]
    assert versions[0].material.decode() == encode_signing_key(new)
    assert versions[1].material.decode() == encode_signing_key(old)
    # Read again, unchanged: still both, the previous not dropped.
    assert len(resolver.fetch("agent1")) == 2
    # Another rotation: the two values it replaced are both still held.
    third = tenuo_core.SigningKey.generate()
    write_key(directory, ".tmp", third)
    os.replace(directory / ".tmp", directory / "agent1.key")
    assert [v.material.decode() for v in resolver.fetch("agent1")] == [
        encode_signing_key(third), encode_signing_key(new), encode_signing_key(old)]


def test_reads_finishing_out_of_order_lose_no_value(directory: Path) -> None:
    # A slow read of the old file finishing after a read of the new one (a refresh
    # racing a preload) must not make the new value look replaced, or drop either.
    old, new = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    resolver = FileKeyResolver(directory)
    new_first = resolver._versions("agent1", encode_signing_key(new).encode(), None)
    old_late = resolver._versions("agent1", encode_signing_key(old).encode(), None)
    assert [v.material for v in new_first] == [encode_signing_key(new).encode()]
    assert {v.material for v in old_late} == {encode_signing_key(old).encode(),
                                              encode_signing_key(new).encode()}


def test_listing_skips_hidden_files_previous_versions_and_other_names(directory: Path) -> None:
    for name in ("agent1.key", "agent2.key", "agent2.key.previous", ".hidden.key",
                 "notes.txt"):
        write_key(directory, name, tenuo_core.SigningKey.generate())
    (directory / "..data").symlink_to(directory)
    assert FileKeyResolver(directory).list_key_ids() == ["agent1", "agent2"]


def test_store_key_writes_0600_atomically_and_keeps_the_previous(directory: Path) -> None:
    resolver = FileKeyResolver(directory)
    first, second = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    resolver.store_key("agent1", encode_signing_key(first))
    resolver.store_key("agent1", encode_signing_key(second))
    path = directory / "agent1.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert (directory / "agent1.key.previous").stat().st_mode & 0o777 == 0o600
    assert path.read_text() == encode_signing_key(second)
    assert (directory / "agent1.key.previous").read_text() == encode_signing_key(first)
    assert sorted(p.name for p in directory.iterdir()) == ["agent1.key", "agent1.key.previous"]


def test_a_file_that_is_not_a_key_is_not_read_whole(directory: Path) -> None:
    big = directory / "agent1.key"
    big.write_bytes(b"A" * (1024 * 1024))
    big.chmod(0o600)
    with pytest.raises(KeyResolutionError, match="larger than"):
        FileKeyResolver(directory).fetch("agent1")
