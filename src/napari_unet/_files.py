"""Writing files so that nothing is ever half-written, and knowing beforehand that a
file can be written at all.

A file is written to a hidden temporary file beside its target (same file system, so the
final rename is atomic) and renamed over the target only when complete: a crash, a full
disk or a kill leaves the old file (or none), never half of one. Temporary files that a
killed process left behind are removed on the next write to the same target.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = ["check_writable", "write_atomically"]


def _temporaries(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []


def _remove_stale_temporaries(path: Path) -> None:
    """Remove ``.NAME.<pid>.<id>.tmp`` files of ``path`` whose writing process is gone."""
    for tmp in _temporaries(path):
        try:
            pid = int(tmp.name[len(path.name) + 2 :].split(".")[0])
            os.kill(pid, 0)  # raises when no such process runs
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (ValueError, PermissionError, OSError):
            continue  # not ours, or a process of another user: leave it


def write_atomically(path: str | os.PathLike, write: bytes | Callable[[Path], None]) -> Path:
    """Write ``path`` in one piece: ``write`` is the bytes, or a function that writes a
    file at the path it is given (e.g. ``lambda p: tifffile.imwrite(p, array)``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    # created with open(), which honours the user's umask (mkstemp would make it private)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if isinstance(write, bytes):
            with open(tmp, "xb") as file:
                file.write(write)
        else:
            write(tmp)
        with open(tmp, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def check_writable(path: str | os.PathLike, what: str = "file") -> Path:
    """Raise ``ValueError`` naming the problem unless a ``what`` can be written at ``path``
    (before long work starts): an empty name, a folder, a file or a read-only place where
    the folder should be. Creates nothing: a probe file is written and removed in the
    nearest folder that exists."""
    if str(path).strip() == "":
        raise ValueError(f"the {what} has no name; give a path such as model.safetensors")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a {what} name inside it")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"cannot write {path}: {folder} is a file, not a folder")
    probe = folder / f".napari-unet-probe.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        probe.touch(exist_ok=False)
    except OSError as error:
        reason = error.strerror or str(error)
        raise ValueError(f"cannot write {path}: {reason} in {folder}") from None
    probe.unlink(missing_ok=True)
    return path
