"""A small real disk for tests of what happens when it fills: a tmpfs mounted and unmounted.

A full disk cannot be faked faithfully (SQLite reacts to ENOSPC in its own
ways: a failed write-ahead log append, a checkpoint that cannot grow the
database), so these tests mount a tmpfs of a few megabytes and fill it.
Mounting needs root.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class MountUnavailable(RuntimeError):
    """A tmpfs cannot be mounted here (not root, or the kernel refuses); says why."""


@contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (``2m``) at ``mount``; unmount it when the block ends."""
    if os.geteuid() != 0:
        raise MountUnavailable("mounting a tmpfs needs root")
    mount.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        raise MountUnavailable(f"mount failed: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Write a new file on ``disk`` until no space is left; the file (delete it to give it back)."""
    filler = disk / f"filler-{len(list(disk.glob('filler-*')))}"
    chunk = b"\0" * 4096
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError:
            pass
    return filler
