"""Exceptions a user can act on. The CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class SeqrecError(Exception):
    """Base class: every error seqrec raises on bad input derives from it."""


class DataNotFoundError(SeqrecError):
    """A dataset file is missing; the message says which file and where to put it."""


class SchemaError(SeqrecError):
    """Input table has missing/extra columns or wrong types (message names file and column)."""


class DataValidationError(SeqrecError):
    """Input values are invalid: NaN/empty ids, time out of order, empty file (names file/row)."""


class ConfigError(SeqrecError):
    """Config file or override is invalid: unknown key, wrong type, unknown model/dataset."""


class UnknownIdError(SeqrecError):
    """An id was not seen in training and the caller asked for strict handling."""


class CheckpointError(SeqrecError):
    """A run directory or checkpoint is missing or inconsistent."""


class DownloadError(SeqrecError):
    """A dataset file could not be fetched: unreachable host, HTTP error, wrong checksum."""
