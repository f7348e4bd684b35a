"""The errors for media the user gave that cannot be used, and the check every reader makes before opening a file."""

from pathlib import Path

__all__ = ["MediaError", "MediaTooLarge", "require_file"]


class MediaError(ValueError):
    """An image, video or recording that cannot be used; the message is one line naming the file and what to do."""


class MediaTooLarge(MediaError):
    """A readable file over a stated bound. Its message is whole (the file, its size, the limit, how to shrink
    it), so readers pass it on as it is instead of wrapping it in "cannot read"."""


def require_file(path: Path, kind: str, fix: str = "Check the path.") -> None:
    """Raise `MediaError` unless `path` is a file; a folder is called a folder, not missing. `kind` starts the
    sentence ("Image", "Video", "Audio")."""
    if path.is_dir():
        raise MediaError(f"{kind} {path} is a directory, not a file. Pass the {kind.lower()} file itself.")
    if not path.is_file():
        raise MediaError(f"{kind} not found: {path}. {fix}")
