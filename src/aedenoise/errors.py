"""User-facing errors.

Every problem a user can cause (a bad file, an unknown name, an invalid setting)
raises :class:`AedenoiseError` (or a subclass) with a one-line message that names
the problem and what to do. The CLI prints that line and exits non-zero; it shows
a traceback only with ``--debug``.
"""

from __future__ import annotations


class AedenoiseError(Exception):
    """A problem the user can fix; ``str(err)`` is the message to show."""


class DataError(AedenoiseError):
    """A dataset or image file is missing, corrupt or unsupported."""


class ConfigError(AedenoiseError):
    """An invalid option, preset, model name or noise setting."""


class CheckpointError(AedenoiseError):
    """A weights file is missing, corrupt or of another architecture."""
