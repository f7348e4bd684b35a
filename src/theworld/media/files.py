"""Atomic writes: a file or folder is written next to its destination and renamed into place, so a crash never
leaves half of it. `tempfile` makes them private (0600 / 0700); what lands in place gets the permissions any new
file gets (the umask's), as a plain `open` would have given it."""

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["usual_mode", "write_atomically", "write_folder_atomically"]


def usual_mode(directory: bool = False) -> int:
    mask = os.umask(0)  # the only way to read the umask is to set it
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def write_atomically(target: Path, write: Callable[[str], None], suffix: str = "") -> Path:
    """`write(staging_path)`, then rename the staging file onto `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, staging = tempfile.mkstemp(prefix=f".{target.name}-", suffix=suffix, dir=target.parent)
    os.close(descriptor)
    try:
        write(staging)
        os.chmod(staging, usual_mode())
        os.replace(staging, target)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return target


def write_folder_atomically(target: Path, fill: Callable[[Path], None]) -> Path:
    """`fill(staging_folder)`, then swap the staging folder in for `target`; an existing `target` is replaced
    whole, and stays as it was if `fill` fails."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", suffix=".partial", dir=target.parent))
    try:
        staging.chmod(usual_mode(directory=True))
        fill(staging)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}-", suffix=".old", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
