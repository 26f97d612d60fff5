"""Atomic file writes: a reader sees the old file or the new one, never half of one.

``write_atomic`` replaces what is there (checkpoints, model files); ``write_new`` never replaces
anything (a user's images): it fails with FileExistsError instead.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    The temporary file lives beside the target because ``os.replace`` is only atomic within
    one file system. Returns the written path.
    """
    target = Path(path)
    temp = _written_temp(target, data)
    try:
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return target


def write_new(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` to ``path`` only if nothing is there; FileExistsError otherwise.

    The whole file is written under a temporary name, then hard-linked to ``path``: ``os.link``
    fails when ``path`` exists, so of two writers racing for one name, one gets it and the other
    is told. On a file system without hard links (FAT, some network shares) the file is created
    exclusively (``O_EXCL``) and written in place instead: still never replacing a file, but a
    reader may then see it half written. Returns the written path.
    """
    target = Path(path)
    temp = _written_temp(target, data)
    try:
        os.link(temp, target)
    except FileExistsError:
        raise
    except OSError:
        with open(target, "xb") as handle:
            handle.write(temp.read_bytes())
    finally:
        temp.unlink(missing_ok=True)
    return target


def _written_temp(target: Path, data: bytes | str) -> Path:
    """``data`` in a new temporary file beside ``target``, flushed to disk."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            # mkstemp creates owner-only files; model folders are meant to be shared and read.
            os.fchmod(handle.fileno(), 0o644)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return Path(temp_name)
