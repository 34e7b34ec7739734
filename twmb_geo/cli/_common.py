"""What every ``twmb`` command shares: consoles, logging, progress bars, ``--json``, exit codes."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as ProgressBar
from rich.text import Text

import twmb_geo as tw

from ..core.ioerrors import io_error
from ..core.types import Progress
from ..core.units import unit_type_names
from ..errors import EXIT_FAILURE, TwmbError

if TYPE_CHECKING:
    from ..config import Config

__all__ = [
    "EXIT_CODES_HELP",
    "LazyChoice",
    "TwmbGroup",
    "consoles",
    "emit",
    "json_option",
    "pct",
    "progress_bar",
    "project_config",
    "root_options",
    "setup_logging",
    "unit_type_option",
]

EXIT_CODES_HELP = """\b
Exit codes:
  0  success
  1  unexpected error (a bug: please report it)
  2  usage or config error
  3  bad input data (missing, unreadable or misformatted file)
  4  contract or reconciliation failure
  5  store or output folder error (cannot write: disk full, read-only; folder in use)
  6  download failed (twmb fetch)
  7  publish failed (target unreachable, token refused, write failed, newer schema)
"""

_NOISY_LOGGERS = ("pyogrio", "fiona", "urllib3")


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _console(stream: Any) -> Console:
    """A console on ``stream``; pipes and CI logs get a wide one instead of 80 columns.

    Colours, styles and cursor moves only on a terminal: a stream redirected to a file or a
    pipe gets plain text even when ``FORCE_COLOR`` or ``TTY_COMPATIBLE`` is set (CI systems
    set them), so a log file never holds escape codes.
    """
    tty = _is_tty(stream)
    width = None if tty else int(os.environ.get("COLUMNS", "120"))
    return Console(file=stream, highlight=False, width=width, force_terminal=tty)


class Consoles:
    """The stdout (results) and stderr (logs, progress, errors) consoles."""

    def __init__(self) -> None:
        self.out = _console(sys.stdout)
        self.err = _console(sys.stderr)

    def bind(self) -> None:
        """Bind to the current streams (a new process, or CliRunner in tests)."""
        self.out, self.err = _console(sys.stdout), _console(sys.stderr)


consoles = Consoles()


class TwmbGroup(click.Group):
    """Maps package errors to exit codes and one-line messages (no traceback)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["twmb_json"] = "--json" in args
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TwmbError as exc:
            _fail(ctx, exc.exit_code, str(exc))
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            _fail(ctx, 130, "interrupted")
        except Exception as exc:
            # an I/O failure outside the stages' own handling: the exit code of the command
            err = io_error(exc, ctx.invoked_subcommand or "twmb", (ctx.obj or {}).get("out"))
            if err is not None:
                _fail(ctx, err.exit_code, str(err))
            if ctx.find_root().params.get("verbose"):  # a bug: keep the traceback
                raise
            _fail(
                ctx,
                EXIT_FAILURE,
                f"unexpected error: {type(exc).__name__}: {exc} (rerun with --verbose for the traceback)",
            )


def _fail(ctx: click.Context, code: int, message: str) -> NoReturn:
    """One-line error on stderr (and the JSON failure object with ``--json``), then exit."""
    sub = ctx.invoked_subcommand
    consoles.err.print(
        Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True, highlight=False
    )
    if ctx.meta.get("twmb_json", False):
        click.echo(json.dumps({"ok": False, "command": sub, "exit_code": code, "error": message}))
    ctx.exit(code)


def setup_logging(verbose: bool, quiet: bool) -> None:
    """Rich logging on stderr: debug with ``verbose``, warnings only with ``quiet``."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = RichHandler(console=consoles.err, show_path=False, show_time=False, markup=False)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    for noisy in _NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def _bar() -> Iterator[Progress]:
    """A transient rich progress bar on stderr, driven by a :data:`Progress` callback."""
    with ProgressBar(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=consoles.err,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=1)

        def update(desc: str, done: int, total: int) -> None:
            bar.update(task, description=desc, completed=done, total=max(total, 1))

        yield update


@contextmanager
def progress_bar(ctx: click.Context, as_json: bool) -> Iterator[Progress | None]:
    """A progress callback, or None with ``--quiet`` or ``--json``, or when stderr is not a
    terminal (a progress bar in a log file is only escape codes)."""
    if root_options(ctx)["quiet"] or as_json or not consoles.err.is_terminal:
        yield None
        return
    with _bar() as update:
        yield update


def root_options(ctx: click.Context) -> dict[str, Any]:
    """The options of ``twmb`` itself (config path, out, quiet, verbose)."""
    return ctx.find_root().obj


def project_config(ctx: click.Context) -> Config:
    """The project config (``--config``, else the bundled data), loaded once per invocation."""
    obj = root_options(ctx)
    if "config" not in obj:
        obj["config"] = tw.load_config(obj["config_path"], out=obj["out"])
    return obj["config"]


def emit(data: dict[str, Any], as_json: bool, human: Callable[[], None]) -> None:
    """Print ``data`` as one JSON object with ``--json``, else call ``human``."""
    if as_json:
        click.echo(json.dumps({"ok": True, **data}, default=str, sort_keys=False))
    else:
        human()


def pct(v: Any) -> str:
    """A capture rate with three decimals, ``-`` when missing."""
    return "-" if v is None else f"{v:.3f}"


class LazyChoice(click.Choice[str]):
    """A :class:`click.Choice` whose names are read from ``module.attribute`` when first
    needed (parsing the option, or its command's help), so ``twmb --help`` and the other
    commands do not import the layer that defines them (the maps, the publish targets).
    """

    def __init__(self, module: str, attribute: str, exclude: Iterable[str] = ()) -> None:
        self._source = (module, attribute, tuple(exclude))
        self._names: tuple[str, ...] | None = None
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:
        """The names, loaded once."""
        if self._names is None:
            module, attribute, exclude = self._source
            names = getattr(importlib.import_module(module), attribute)
            self._names = tuple(n for n in names if n not in exclude)
        return self._names

    @choices.setter
    def choices(self, names: tuple[str, ...]) -> None:
        self._names = tuple(names)


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as one JSON object on stdout."
)

unit_type_option = click.option(
    "--unit-type",
    "unit_types",
    multiple=True,
    type=click.Choice(list(unit_type_names())),
    help="Only these unit types (repeatable). Default: [model] unit_types present in the panel.",
)
