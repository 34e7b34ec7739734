"""Data commands: ``init``, ``ingest``, ``fetch``, ``profiles`` and ``synth``."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

import twmb_geo as tw

from ..errors import EXIT_FETCH, ConfigError
from ..io.ckan import DEFAULT_MAX_BYTES, TORONTO_CKAN_URL, TORONTO_PACKAGES, FetchReport
from ._common import consoles, emit, json_option, progress_bar, project_config, root_options
from ._tables import print_sources

__all__ = ["fetch", "ingest", "init", "profiles", "synth"]

#: File formats ``twmb synth`` can write streets and pipes in.
SYNTH_FORMATS = ("geojson", "csv")

#: Environment variable holding the CKAN API token of ``twmb fetch`` (never an option).
CKAN_TOKEN_ENV = "CKAN_API_TOKEN"

_SIZE = re.compile(r"(\d+)\s*([kmgt]?)i?b?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class ByteSize(click.ParamType):
    """A positive size in bytes: ``1000000``, ``500M``, ``500MiB``, ``2G`` (powers of 1024)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """The size in bytes; a usage error (exit 2) for anything else."""
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        match = _SIZE.fullmatch(str(value).strip())
        number = int(match[1]) * _SIZE_UNITS[match[2].lower()] if match else 0
        if number <= 0:
            self.fail(f"{value!r} is not a positive size such as 2G, 500M or 1048576", param, ctx)
        return number


@click.command()
@click.argument("args", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--from",
    "from_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Draft profiles and a config from these files (repeatable; more files may follow).",
)
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With --from: the folder to write twmb.toml and profiles.toml in (default: .).",
)
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@json_option
@click.pass_context
def init(
    ctx: click.Context,
    args: tuple[Path, ...],
    from_files: tuple[Path, ...],
    folder: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Write a project config: `twmb init [PATH]` or `twmb init --from FILE... [--dir DIR]`.

    Without --from, writes PATH (default twmb.toml) listing the bundled example city's sources.
    With --from, looks at the files (columns, sample values, CRS, date formats, units,
    material codes) and writes DIR/profiles.toml and DIR/twmb.toml to review: every guess is
    marked "# GUESS: <evidence>", every value it could not guess is "CHECK"
    (docs/profiles.md).
    """
    if from_files:
        _init_from([*from_files, *args], folder or Path(), force, as_json)
        return
    if folder is not None:
        raise click.UsageError("--dir goes with --from; without it give the config PATH")
    if len(args) > 1:
        raise click.UsageError("give one config PATH (or use --from FILE...)")
    path = args[0] if args else Path("twmb.toml")
    cfg = tw.default_config(root_options(ctx)["out"] or "out")
    written = tw.write_config(cfg, path, overwrite=force)
    tw.load_config(written)  # what we write must load
    emit(
        {"command": "init", "config": str(written)},
        as_json,
        lambda: consoles.out.print(f"wrote {written}"),
    )


def _init_from(files: list[Path], folder: Path, force: bool, as_json: bool) -> None:
    """``twmb init --from``: inspect the files, write the drafts, list what to check."""
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise click.UsageError(f"not a file: {', '.join(missing)}")
    guesses = [tw.inspect_file(f) for f in files]
    draft = tw.draft_project(guesses, folder)
    targets = {"profiles": folder / "profiles.toml", "config": folder / "twmb.toml"}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not force:
        raise ConfigError(f"{', '.join(existing)} already exist(s); pass --force to overwrite")
    folder.mkdir(parents=True, exist_ok=True)
    targets["profiles"].write_text(draft.profiles_toml, encoding="utf-8")
    targets["config"].write_text(draft.config_toml, encoding="utf-8")
    try:
        tw.load_config(targets["config"])
        loads, problems = True, []
    except ConfigError as exc:
        loads, problems = False, exc.problems or [str(exc)]
    to_check = [
        {"file": name, "what": g.what, "value": g.value, "evidence": g.evidence}
        for name, g in draft.to_check
    ]
    data = {
        "command": "init",
        "config": str(targets["config"]),
        "profiles": str(targets["profiles"]),
        "crs": draft.project_crs,
        "sources": [
            {"id": sid, "profile": pid, "kind": g.kind, "file": str(g.path)}
            for sid, pid, g in zip(draft.source_ids, draft.profile_ids, draft.files, strict=True)
        ],
        "to_check": to_check,
        "loads": loads,
        "problems": problems,
    }

    def human() -> None:
        t = Table(title="Drafted sources", title_justify="left")
        for col in ("source", "profile", "kind", "file", "records"):
            t.add_column(col)
        for sid, pid, g in zip(draft.source_ids, draft.profile_ids, draft.files, strict=True):
            t.add_row(sid, pid or "CHECK", g.kind or "CHECK", g.path.name, f"{g.rows:,}")
        consoles.out.print(t)
        crs_ev = draft.project_crs_guess.evidence
        consoles.out.print(escape(f"analysis crs: {draft.project_crs} ({crs_ev})"))
        by_name = [
            c for c in to_check if c["what"].startswith("columns.") and c["value"] != "CHECK"
        ]
        rest = [c for c in to_check if c not in by_name]
        consoles.out.print(f"{len(rest)} guesses to check (GUESS / CHECK in the files):")
        for c in rest:
            consoles.out.print(
                escape(f"  {c['file']}: {c['what']} = {c['value']!r}  ({c['evidence']})")
            )
        consoles.out.print(
            f"  + {len(by_name)} column mappings by name (marked GUESS in profiles.toml)"
        )
        consoles.out.print(f"wrote {targets['profiles']} and {targets['config']}")
        if not loads:
            consoles.out.print("the config does not load yet; fix these, then run `twmb ingest`:")
            for p in problems[:10]:
                consoles.out.print(escape(f"  - {p}"))

    emit(data, as_json, human)


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
        report = tw.ingest_sources(cfg, list(sources) or None, progress=prog)
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
    help="Active pipe records (49,000 is the bundled city's size; 1k..5M).",
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
    city = tw.make_city(n_pipes=n_pipes, seed=seed)
    paths = tw.write_city(city, folder, formats=formats or SYNTH_FORMATS[:1])
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
    "--base-url", default=None, help="CKAN base URL (default: the bundled city's portal)."
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
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="HOST[:PORT]",
    help="Also download from (and follow redirects to) this host, https only (repeatable). "
    "Default: only the portal's own host.",
)
@click.option(
    "--max-bytes",
    type=ByteSize(),
    default=DEFAULT_MAX_BYTES,
    help="Largest file to download, e.g. 500M or 4G (default 2G); a larger one fails.",
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
    allow_hosts: tuple[str, ...],
    max_bytes: int,
    as_json: bool,
) -> None:
    """Fetch Watermain Breaks, Watermains, Centreline and Neighbourhoods via the CKAN API.

    Files are streamed to a temporary file, verified (size, checksum), renamed atomically;
    unchanged files are skipped. Only https is used (http only to localhost), only on the
    portal's host or an --allow-host, redirects included; files above --max-bytes are
    refused. An API token, if needed, comes from CKAN_API_TOKEN and is sent to the
    portal's host over https only. Exit code 6 when any file failed or was refused.
    """
    dest = dest or ((root_options(ctx)["out"] or Path("out")) / "downloads")
    with progress_bar(ctx, as_json) as prog:

        def on_bytes(label: str, done: int, total: int | None) -> None:
            if prog:
                prog(f"fetch {label}", done, total or max(done, 1))

        report = tw.fetch_toronto(
            dest,
            list(packages) or None,
            base_url=base_url or TORONTO_CKAN_URL,
            timeout=timeout,
            retries=retries,
            progress=on_bytes,
            allow_hosts=allow_hosts,
            max_bytes=max_bytes,
            token=os.environ.get(CKAN_TOKEN_ENV) or None,
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
    profs = {**tw.builtin_profiles(), **{p.id: p for p in extra}}
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
