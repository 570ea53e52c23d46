"""What a dataset reader does with a problem in its input: raise it, or collect it and go on.

Every reader has one code path. It hands each problem it finds (a bad annotation entry, a
missing image, an unknown class...) to a :class:`Problems`, then skips the unusable part:

- strict (``Problems(None)``, what training uses): the first problem raises DataError
  ``"<file>: <detail>"``, so a run never starts on data it would get wrong;
- lenient (``Problems(found)`` with a list, what ``openyolox check-data`` uses): each problem
  is appended to ``found`` as ``(file, kind, detail + what the reader does instead)`` and
  the reader goes on, so one check reports every problem of every file.

``kind`` is one of :data:`openyolox.data.checks.KINDS`.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple, Union

from openyolox.errors import DataError
from openyolox.typing import PathLike

Problem = Tuple[str, str, str]  # (file, kind, detail)


class Problems:
    """Raise (strict) or collect (lenient) the problems a reader finds; see the module docstring."""

    def __init__(self, found: Optional[List[Problem]] = None) -> None:
        self.found = found

    @classmethod
    def of(cls, problems: Optional[Union[List[Problem], "Problems"]]) -> "Problems":
        """The readers' public ``problems`` argument (None or a list) as a Problems."""
        return problems if isinstance(problems, Problems) else cls(problems)

    @property
    def strict(self) -> bool:
        return self.found is None

    def add(self, where: object, kind: str, detail: str, instead: str = "") -> None:
        """A problem with ``where`` (a file, or ``file:line``). Strict: raise DataError
        ``"where: detail"``; lenient: record ``detail + instead``, where ``instead`` says what
        the reader does about it (e.g. ``"; skipped"``)."""
        if self.found is None:
            raise DataError(f"{where}: {detail}")
        self.found.append((str(where), kind, detail + instead))

    def caught(self, exc: DataError, where: object, kind: str, instead: str = "") -> None:
        """A DataError a helper raised about ``where``: strict re-raises it as it is; lenient
        records its message (without the leading ``where: ``)."""
        if self.found is None:
            raise exc
        self.found.append((str(where), kind, without_path(str(exc), where) + instead))


def read_annotation_file(path: Path, missing: str, empty: str) -> bytes:
    """The bytes of an annotation file (json, xml, yaml); DataError ``"path: <missing>"`` when it
    does not exist, ``"path: <empty>"`` when it holds only whitespace, and one naming the OS
    error when it cannot be read."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: {missing}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read annotation file ({exc.strerror or exc})") from None
    if not raw.strip():
        raise DataError(f"{path}: {empty}")
    return raw


def without_path(message: str, path: PathLike) -> str:
    """``"path: detail"`` -> ``"detail"`` (a DataError message without the file it names)."""
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message
