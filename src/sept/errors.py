"""Exceptions that name the file, field or value at fault."""

from __future__ import annotations


class SeptError(Exception):
    """Base class of every error sept raises on purpose."""


class AudioDecodeError(SeptError):
    """An audio file could not be read; the message names the file and the reason."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode audio file {self.path!r}: {reason}")


class UnknownNameError(SeptError, KeyError):
    """An unknown backbone, method or dataset name; the message lists the valid ones."""

    def __init__(self, kind: str, name: str, valid: list[str]) -> None:
        self.kind, self.name, self.valid = kind, name, valid
        super().__init__(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(valid) or '(none)'}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DataError(SeptError):
    """A malformed dataset file (CSV, folder, manifest); the message names the file and field."""


class ModelLoadError(SeptError):
    """A pretrained model could not be loaded; the message names the id or folder and what to do."""


class ConfigError(SeptError, ValueError):
    """An invalid configuration value; the message names the field (and file) at fault."""
