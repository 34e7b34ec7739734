"""Data commands: ``init``, ``ingest``, ``fetch``, ``profiles`` and ``synth``."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from .. import api, builtin_profiles, fetch_toronto
from ..config import default_config, load_config, write_config
from ..errors import EXIT_FETCH
from ..io.ckan import TORONTO_CKAN_URL, TORONTO_PACKAGES, FetchReport
from ..synth import make_city, write_city
from ._common import consoles, emit, json_option, progress_bar, project_config, root_options
from ._tables import print_sources

__all__ = ["fetch", "ingest", "init", "profiles", "synth"]

#: File formats ``twmb synth`` can write streets and pipes in.
SYNTH_FORMATS = ("geojson", "csv")


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), default=Path("twmb.toml"))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@json_option
@click.pass_context
def init(ctx: click.Context, path: Path, force: bool, as_json: bool) -> None:
    """Write a project config (TOML) to PATH (default twmb.toml).

    The config lists the bundled Toronto sources; edit it to point at other files or add
    profiles for another city (see docs/profiles.md).
    """
    cfg = default_config(root_options(ctx)["out"] or "out")
    written = write_config(cfg, path, overwrite=force)
    load_config(written)  # what we write must load
    emit(
        {"command": "init", "config": str(written)},
        as_json,
        lambda: consoles.out.print(f"wrote {written}"),
    )


@click.command()
@click.argument("sources", nargs=-1)
@json_option
@click.pass_context
def ingest(ctx: click.Context, sources: tuple[str, ...], as_json: bool) -> None:
    """Validate sources into the store (all enabled sources, or the SOURCES ids given).

    Each source is one transaction: rows in = accepted + quarantined + excluded (by the
    profile's [[where]] row filters), or nothing is written.
    """
    cfg = project_config(ctx)
    with progress_bar(ctx, as_json) as prog:
        report = api.ingest_sources(cfg, list(sources) or None, progress=prog)
    data = {"command": "ingest", **report.to_dict(), "manifest": str(cfg.out_dir / "manifest.json")}
    emit(data, as_json, lambda: print_sources(data["sources"], data["store"]))


@click.command()
@click.argument(
    "folder", type=click.Path(file_okay=False, path_type=Path), default=Path("synthetic-city")
)
@click.option(
    "--pipes",
    "n_pipes",
    type=click.IntRange(min=100),
    default=49_000,
    show_default=True,
    help="Active pipe records (49,000 is Toronto's size; 1k..5M).",
)
@click.option(
    "--seed", type=int, default=42, show_default=True, help="Random seed (same seed, same files)."
)
@click.option(
    "--format",
    "formats",
    type=click.Choice(list(SYNTH_FORMATS)),
    multiple=True,
    help="Street and pipe file formats (repeatable; default geojson).",
)
@json_option
def synth(folder: Path, n_pipes: int, seed: int, formats: tuple[str, ...], as_json: bool) -> None:
    """Generate a synthetic city (streets, pipes, breaks with known truth) in City formats.

    Writes FOLDER/twmb.toml too: `twmb --config FOLDER/twmb.toml run` ingests it. The hazard
    model is documented in docs/synthetic-city.md; the true pipe of each break is kept
    apart in FOLDER/truth/.
    """
    city = make_city(n_pipes=n_pipes, seed=seed)
    paths = write_city(city, folder, formats=formats or SYNTH_FORMATS[:1])
    data = {
        "command": "synth",
        "folder": str(folder),
        "files": {k: str(v) for k, v in paths.items()},
        **city.figures(),
    }

    def human() -> None:
        for k, v in city.figures().items():
            consoles.out.print(f"{k}: {v}")
        consoles.out.print(f"config: {paths['config']}")

    emit(data, as_json, human)


@click.group()
def fetch() -> None:
    """Download current open data from a municipal portal."""


def _print_downloads(dest: Path, report: FetchReport) -> None:
    """One row per downloaded (or skipped, or failed) file; failures on stderr."""
    t = Table(title=f"Downloads in {dest}", title_justify="left")
    for col in ("package", "file", "status", "bytes"):
        t.add_column(col)
    for f in report.files:
        t.add_row(f.package, f.path.name, f.status, f"{f.bytes:,}")
    consoles.out.print(t)
    for f in report.files:
        if f.error:
            consoles.err.print(f"[red]failed:[/] {f.error}", markup=True)


@fetch.command("toronto")
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Download folder. Default: <out>/downloads.",
)
@click.option(
    "--package",
    "packages",
    multiple=True,
    type=click.Choice(list(TORONTO_PACKAGES)),
    help="Only these CKAN packages (repeatable). Default: all four.",
)
@click.option(
    "--base-url", default=None, help="CKAN base URL (default: the City of Toronto portal)."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Seconds per request.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="Retries per request.",
)
@json_option
@click.pass_context
def fetch_toronto_cmd(
    ctx: click.Context,
    dest: Path | None,
    packages: tuple[str, ...],
    base_url: str | None,
    timeout: float,
    retries: int,
    as_json: bool,
) -> None:
    """Fetch Watermain Breaks, Watermains, Centreline and Neighbourhoods via the CKAN API.

    Files are streamed to a temporary file, verified (size, checksum), renamed atomically;
    unchanged files are skipped. Exit code 6 when any file failed after all retries.
    """
    dest = dest or ((root_options(ctx)["out"] or Path("out")) / "downloads")
    with progress_bar(ctx, as_json) as prog:

        def on_bytes(label: str, done: int, total: int | None) -> None:
            if prog:
                prog(f"fetch {label}", done, total or max(done, 1))

        report = fetch_toronto(
            dest,
            list(packages) or None,
            base_url=base_url or TORONTO_CKAN_URL,
            timeout=timeout,
            retries=retries,
            progress=on_bytes,
        )
    data = {"command": "fetch", "dest": str(dest), **report.to_dict()}
    data["ok"] = report.ok
    if as_json:
        click.echo(json.dumps(data, default=str))
    else:
        _print_downloads(dest, report)
    if not report.ok:
        ctx.exit(EXIT_FETCH)


@click.command()
@json_option
@click.pass_context
def profiles(ctx: click.Context, as_json: bool) -> None:
    """List the source profiles (built-in and those of the config)."""
    extra = project_config(ctx).user_profiles() if root_options(ctx)["config_path"] else []
    profs = {**builtin_profiles(), **{p.id: p for p in extra}}
    rows = [
        {
            "id": p.id,
            "kind": p.kind,
            "format": p.format,
            "origin": p.origin,
            "description": p.description,
        }
        for p in sorted(profs.values(), key=lambda p: p.id)
    ]

    def human() -> None:
        t = Table(title="Source profiles", title_justify="left")
        for col in ("id", "kind", "format", "description"):
            t.add_column(col)
        for r in rows:
            t.add_row(r["id"], r["kind"], r["format"], r["description"])
        consoles.out.print(t)

    emit({"command": "profiles", "profiles": rows}, as_json, human)
