"""User-facing errors.

Anything a user can cause (a bad path, a malformed annotation file, an unknown model
name) raises one of these with a message that names the file and says how to fix it.
The CLI prints the message on one line and exits non-zero; a traceback is shown only
with ``--debug``.
"""


class OpenYoloxError(Exception):
    """Base class for errors caused by input the user can fix."""


class DataError(OpenYoloxError):
    """A dataset, image or annotation file is missing, unreadable or inconsistent."""


class CheckpointError(OpenYoloxError):
    """A checkpoint is unsafe, unreadable, or does not fit the model."""


class ConfigError(OpenYoloxError):
    """An option value is invalid (unknown model name, bad image size, ...)."""


class WeightsUnavailableError(OpenYoloxError):
    """Published weights could not be downloaded or failed their integrity checks.

    The message is one line: what was tried, why it failed, and the manual fix.
    """


def user_message(exc: BaseException) -> str:
    """The message of ``exc`` as the user should read it.

    An error raised inside a DataLoader worker process reaches the main process re-raised
    with the worker's whole traceback in its message ("Caught DataError in DataLoader worker
    process 0. Original Traceback ..."); only the original message at its end is kept."""
    text = str(exc)
    if "Original Traceback" not in text:
        return text
    for name in (f"{type(exc).__module__}.{type(exc).__qualname__}: ", f"{type(exc).__qualname__}: "):
        at = text.rfind(name)
        if at >= 0:
            return text[at + len(name):].strip()
    return text.strip().splitlines()[-1]


class ImageRepairedWarning(UserWarning):
    """An image file is damaged in a way that loses no pixel (e.g. a JPEG whose last bytes, the
    end marker, are cut off) and was used as if it were whole. ``openyolox check-data`` lists
    such files as warnings and ``--fix-out`` writes them complete."""
