"""Kubernetes' atomic writer, replayed on a local directory.

The kubelet publishes a Secret (or ConfigMap, or projected) volume the way
``AtomicWriter.Write`` does (kubernetes ``pkg/volume/util/atomic_writer.go``):

1. write every file of the new version into a fresh ``..<timestamp>``
   directory;
2. point a temporary link ``..data_tmp`` at it, and rename that link over
   ``..data`` (one atomic rename publishes the whole version);
3. create the user-visible names as links through ``..data`` (once);
4. remove the previous ``..<timestamp>`` directory.

:class:`AtomicWriterVolume` does exactly that, so a resolver can be tested
against the swaps it will see in a pod.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = ["AtomicWriterVolume"]


class AtomicWriterVolume:
    """A directory published as the kubelet publishes a Secret volume.

    Args:
        directory: The volume's mount point (created 0700 if missing).
        mode: The files' mode (Kubernetes' ``defaultMode``; 0644 unless set).
    """

    def __init__(self, directory: Path, mode: int = 0o400) -> None:
        self.directory = directory
        self.mode = mode
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._versions = itertools.count()

    def publish(self, files: Mapping[str, bytes]) -> None:
        """Publish a new version holding ``files`` (name to content)."""
        stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime())
        version = self.directory / f"..{stamp}.{next(self._versions):09d}"
        version.mkdir(mode=0o755)
        for name, content in files.items():
            path = version / name
            path.write_bytes(content)
            path.chmod(self.mode)
        data = self.directory / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        tmp = self.directory / "..data_tmp"
        os.symlink(version.name, tmp)
        os.rename(tmp, data)
        for name in files:
            visible = self.directory / name
            if not visible.is_symlink():
                os.symlink(f"..data/{name}", visible)
        if old is not None:
            shutil.rmtree(self.directory / old)
