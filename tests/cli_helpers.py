"""Helpers shared by the CLI tests: run ``twmb`` in-process and read its output."""

from __future__ import annotations

import json
import logging

from click.testing import CliRunner, Result

import twmb_geo.cli as cli

CLI_ENV: dict[str, str | None] = {"COLUMNS": "120", "TWMB_CONFIG": None}


def twmb(*args: object) -> Result:
    """Run ``twmb ARGS`` in-process (stdout and stderr captured apart), restoring logging."""
    argv = [str(a) for a in args]
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        return CliRunner(env=CLI_ENV).invoke(cli.main, argv)
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def show(r: Result) -> str:
    """Everything about a result, for assertion messages."""
    exc = "" if r.exception is None or isinstance(r.exception, SystemExit) else repr(r.exception)
    return f"exit {r.exit_code} {exc}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"


def flat(text: str) -> str:
    """Whitespace-normalised text (rich may wrap long lines)."""
    return " ".join(text.split())


def error_text(r: Result, code: int) -> str:
    """Check a clean failure with exit ``code``; return the error message, flattened."""
    assert r.exit_code == code, show(r)
    assert isinstance(r.exception, SystemExit), show(r)
    assert "Traceback" not in r.stdout + r.stderr, show(r)
    assert "error:" in r.stderr, show(r)
    return flat(r.stderr[r.stderr.index("error:") :])


def ok_json(r: Result) -> dict:
    """The JSON object of a successful ``--json`` run."""
    assert r.exit_code == 0, show(r)
    doc = json.loads(r.stdout)
    assert doc["ok"] is True
    return doc


def source(doc: dict, source_id: str = "breaks") -> dict:
    """One source's report from a run/ingest JSON document."""
    return next(s for s in doc["sources"] if s["source_id"] == source_id)
