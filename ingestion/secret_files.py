"""Secrets kept in files of their own (mode 0600) under the data folder, generated on first use."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path


def read_or_create(path: Path, new_secret: Callable[[], str]) -> str:
    """The secret in path, or a new one from new_secret written there first (mode 0600, atomically, so that a
    concurrent first use never sees half a secret). A file with looser permissions is tightened to 0600."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_IMODE(path.stat().st_mode) != 0o600:
            path.chmod(0o600)
        secret = path.read_text().strip()
        if secret:
            return secret
    secret = new_secret()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, secret + "\n")
    return secret


def write_private(path: Path, content: str | bytes) -> None:
    """Replace path with content, mode 0600 from the first byte, atomically (a reader sees the old file or the new
    one, never half of it): for files that hold a secret, or are made from one."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb" if isinstance(content, bytes) else "w") as out:
        out.write(content)
    partial.rename(path)
