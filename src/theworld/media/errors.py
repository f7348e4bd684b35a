"""The one error for media the user gave that cannot be used."""

__all__ = ["MediaError"]


class MediaError(ValueError):
    """An image, video or recording that cannot be used; the message is one line naming the file and what to do."""
