"""The few exceptions of the engine. Faces (CLI, app) turn them into one French line."""

from __future__ import annotations


class QAError(Exception):
    """Base class: a broken state the user can fix; its message says how."""


class ModelUnavailableError(QAError):
    """No usable embedding model: the bundled file is missing and the hub cannot be reached."""


class IndexNotFoundError(QAError):
    """No index at the given path: run `qa index build`."""


class IndexCorruptError(QAError):
    """The index on disk is unreadable or inconsistent: rebuild it."""


class CorpusError(QAError):
    """The corpus folder is missing or holds no readable document."""
