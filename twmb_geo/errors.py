"""Exception classes; the CLI maps each to a documented exit code.

Every error raised for a user mistake carries a message that names the file, row or
field at fault and what to do about it, so the CLI can print it without a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_CONTRACT = 4
EXIT_STORE = 5
EXIT_FETCH = 6
EXIT_PUBLISH = 7


class TwmbError(Exception):
    """Base class of every error the package raises on purpose."""

    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str, problems: Iterable[str] = ()) -> None:
        self.problems: list[str] = list(problems)
        text = message
        if self.problems:
            text += "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text)
        self.message = message


class ConfigError(TwmbError):
    """The project config or a source profile is invalid (exit 2)."""

    exit_code = EXIT_USAGE


class InputDataError(TwmbError):
    """An input file is missing, unreadable or not in the declared format (exit 3)."""

    exit_code = EXIT_BAD_INPUT


class ContractError(TwmbError):
    """A table does not satisfy its schema in ``schemas/`` (exit 4)."""

    exit_code = EXIT_CONTRACT


class ReconciliationError(ContractError):
    """Rows in != accepted + quarantined for a source (exit 4)."""


class StoreError(TwmbError):
    """The DuckDB store or the output folder cannot be opened or written (exit 5)."""

    exit_code = EXIT_STORE


class FetchError(TwmbError):
    """A download from an open-data portal failed after all retries (exit 6)."""

    exit_code = EXIT_FETCH


class PublishError(TwmbError):
    """A publish target cannot be reached, refuses the credentials or the write (exit 7).

    Messages name the target (URL without credentials, or file) and never contain a token.
    """

    exit_code = EXIT_PUBLISH


class SchemaVersionError(PublishError):
    """The target holds a star schema newer than this version of twmb_geo knows (exit 7)."""
