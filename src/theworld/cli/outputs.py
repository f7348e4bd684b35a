"""The files a command writes (`--save-world`, `--audio-out`, `-o`): checked before any work, and written with
errors that name the user's path and flag.

A missing folder on the way is created, as the writers create it; a path is refused when its nearest existing
folder cannot be written to, when that is a file rather than a folder, or when a file is asked for where a
folder stands (and the other way round).
"""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["check_output_file", "check_output_folder", "writing"]


def check_output_file(path: Path, flag: str) -> None:
    """Raise a one-line ValueError, naming `flag` and `path`, when a file could not be written at `path`."""
    target = path.expanduser()
    if target.is_dir():
        raise ValueError(f"{flag} {path} is a folder; pass a file path (a new name inside that folder, say)")
    _check_folder(target.parent, path, flag)


def check_output_folder(path: Path, flag: str) -> None:
    """Raise a one-line ValueError, naming `flag` and `path`, when a folder could not be made or written at `path`."""
    target = path.expanduser()
    if target.exists() and not target.is_dir():
        raise ValueError(f"{flag} {path} is a file, not a folder; pass a folder path")
    _check_folder(target, path, flag)


def _check_folder(folder: Path, path: Path, flag: str) -> None:
    """`folder` (or its nearest existing parent, where the missing folders would be made) takes new files."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"Cannot write {flag} {path}: {existing} is a file, not a folder; pass another path")
    try:
        # Asking the file system is the only sure test: permissions, read-only mounts and quotas all count.
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(
            f"Cannot write {flag} {path}: {existing} takes no new files ({reason}); pass a path in a folder you can "
            "write to"
        ) from None


@contextmanager
def writing(path: Path, flag: str) -> Iterator[None]:
    """Turn a failed write into one line naming `flag` and the user's `path`, never a staging file's name."""
    try:
        yield
    except OSError as error:
        # strerror leaves out the file name, which for an atomic write is a staging file the user never named.
        reason = error.strerror or (str(error).splitlines() or [type(error).__name__])[0]
        raise ValueError(f"Cannot write {flag} {path}: {reason}; pass a path in a folder you can write to") from None
