"""Output commands: ``publish``, ``map``, ``report`` and ``powerbi``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

import twmb_geo as tw

from ._common import LazyChoice, consoles, emit, json_option, progress_bar, project_config

__all__ = ["map_cmd", "powerbi_cmd", "publish_cmd", "report_cmd"]

#: the publish targets (a registry), and how ``twmb publish --turso-url`` writes to a
#: remote database (every Turso session mode but the local file)
TARGETS = LazyChoice("twmb_geo.publish.targets", "TARGETS")
REMOTE_TURSO_MODES = LazyChoice("twmb_geo.publish.turso.session", "MODES", exclude=("file",))
#: the star folder's file formats, the map export formats and the Power BI kit's sources
STAR_FORMATS = LazyChoice("twmb_geo.publish.files", "FORMATS")
EXPORT_FORMATS = LazyChoice("twmb_geo.maps.exports", "EXPORT_FORMATS")
POWERBI_SOURCES = LazyChoice("twmb_geo.publish.powerbi.common", "SOURCES")


def _print_publish(res: dict[str, Any]) -> None:
    """Rows per star table and what happened at each target."""
    t = Table(title=f"Star schema {res['publish_id']}", title_justify="left")
    t.add_column("table")
    t.add_column("rows", justify="right")
    for name, n in res["rows"].items():
        t.add_row(name, f"{n:,}")
    consoles.out.print(t)
    for tgt in res["targets"]:
        if tgt.get("resumed"):
            state = "pushed: the interrupted push of this publish was completed"
        elif tgt.get("changed") is False:
            state = "unchanged"
        else:
            state = "written"
        consoles.out.print(f"{tgt['target']}: {tgt['location']} ({state})")


@click.command("publish")
@click.option(
    "--to",
    "targets",
    type=TARGETS,
    multiple=True,
    help="Targets (repeatable). Default: folder, duckdb and turso-file, plus turso with --turso-url.",
)
@click.option(
    "--folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Parquet/CSV folder (default <out>/star); swapped in atomically.",
)
@click.option(
    "--format",
    "formats",
    type=STAR_FORMATS,
    multiple=True,
    help="File formats of the folder (repeatable; default both).",
)
@click.option(
    "--duckdb-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="DuckDB target file (default <out>/star.duckdb).",
)
@click.option(
    "--turso-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Local Turso database file (default <out>/turso/twmb_star.db).",
)
@click.option(
    "--turso-url",
    default=None,
    help="Remote Turso database (libsql://<db>.turso.io or https://...); "
    "the token comes from TURSO_AUTH_TOKEN.",
)
@click.option(
    "--turso-mode",
    type=REMOTE_TURSO_MODES,
    default="http",
    show_default=True,
    help="http: write over /v2/pipeline (fast, bounded memory); sync: write a local replica "
    "and push it with turso.sync (resumable, slower, holds the whole publish in memory).",
)
@json_option
@click.pass_context
def publish_cmd(
    ctx: click.Context,
    targets: tuple[str, ...],
    folder: Path | None,
    formats: tuple[str, ...],
    duckdb_file: Path | None,
    turso_file: Path | None,
    turso_url: str | None,
    turso_mode: str,
    as_json: bool,
) -> None:
    """Build the Power BI star schema from the store and publish it.

    Dimensions (date, H3 cell, pipe, street segment, neighbourhood, model) and facts
    (breaks, unit-years, risk scores, hot spots, CV metrics, simulations) with integer
    surrogate keys, WGS84 lat/lon and WKT; every fact key is checked before writing.
    Each target is written atomically; publishing the same content again changes nothing.
    """
    with progress_bar(ctx, as_json) as prog:
        res = tw.publish_star(
            project_config(ctx),
            targets=targets or None,
            folder=folder,
            formats=formats or STAR_FORMATS.choices,
            duckdb_path=duckdb_file,
            turso_file=turso_file,
            turso_url=turso_url,
            turso_mode=turso_mode,
            progress=prog,
        ).to_dict()
    res.pop("checksums", None)
    emit({"command": "publish", **res}, as_json, lambda: _print_publish(res))


def _print_maps(res: dict[str, Any]) -> None:
    """Features per map layer, the PNG maps and the HTML map."""
    t = Table(title=f"Map layers in {res['folder']}", title_justify="left")
    t.add_column("layer")
    t.add_column("features", justify="right")
    for name, n in res["rows"].items():
        t.add_row(name, f"{n:,}")
    consoles.out.print(t)
    for name, path in res.get("png", {}).items():
        consoles.out.print(f"{name}: {path}")
    if res.get("html"):
        consoles.out.print(f"html map: {res['html']['path']}")


@click.command("map")
@click.option(
    "--folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default <out>/maps).",
)
@click.option(
    "--format",
    "formats",
    type=EXPORT_FORMATS,
    multiple=True,
    help="Data export formats (repeatable; default all three).",
)
@click.option("--no-png", is_flag=True, help="Skip the static PNG maps.")
@click.option("--no-html", is_flag=True, help="Skip the interactive HTML map.")
@json_option
@click.pass_context
def map_cmd(
    ctx: click.Context,
    folder: Path | None,
    formats: tuple[str, ...],
    no_png: bool,
    no_html: bool,
    as_json: bool,
) -> None:
    """Map exports from the store: GeoJSON (RFC 7946), GeoPackage and GeoParquet per unit
    type, static PNG maps (risk, tiers, hot spots, break density) and one offline HTML map.
    """
    with progress_bar(ctx, as_json) as prog:
        res = tw.render_maps(
            project_config(ctx),
            folder=folder,
            formats=formats or EXPORT_FORMATS.choices,
            png=not no_png,
            html=not no_html,
            progress=prog,
        ).to_dict()
    emit({"command": "map", **res}, as_json, lambda: _print_maps(res))


@click.command("report")
@click.option(
    "--folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default <out>/report).",
)
@json_option
@click.pass_context
def report_cmd(ctx: click.Context, folder: Path | None, as_json: bool) -> None:
    """The run report: data summary, breaks by year and month, maps, hot spots, model card,
    riskiest units, Monte Carlo bands and the renewal scenario (report.html and report.md).
    """
    cfg = project_config(ctx)
    with progress_bar(ctx, as_json) as prog:
        maps = tw.render_maps(cfg, formats=(), progress=prog)
        res = tw.write_report(cfg, folder=folder, maps=maps).to_dict()
    res = {k: str(v) if isinstance(v, Path) else v for k, v in res.items()}
    emit(
        {"command": "report", **res},
        as_json,
        lambda: consoles.out.print(f"report: {res['html']}"),
    )


@click.command("powerbi")
@click.option(
    "--folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Kit folder (default <out>/powerbi).",
)
@click.option(
    "--source",
    type=POWERBI_SOURCES,
    default="turso",
    show_default=True,
    help="What the model's tables read: the Turso database over HTTP or the Parquet folder.",
)
@click.option(
    "--star-folder",
    default=None,
    metavar="PATH",
    help="The publish folder as the Power BI machine sees it (default of the StarFolder "
    "parameter, kept as given, e.g. 'D:\\bi\\twmb\\star'); default: <out>/star here.",
)
@click.option(
    "--replace-report",
    is_flag=True,
    help="Rewrite the starter report even if the kit folder has one (edits made in Power BI "
    "Desktop are lost); without it an existing report is kept.",
)
@json_option
@click.pass_context
def powerbi_cmd(
    ctx: click.Context,
    folder: Path | None,
    source: str,
    star_folder: str | None,
    replace_report: bool,
    as_json: bool,
) -> None:
    """Write the Power BI kit: Power Query (M) scripts and a PBIP semantic model (TMDL).

    Generated from the star-schema contracts alone (no store needed): one Turso and one
    Parquet query per star table, the parameters TursoUrl, TursoToken and StarFolder, the
    TMDL model with relationships and DAX measures, a starter report (map, trend, ranking
    and model pages) and TWMB.pbip to open in Power BI Desktop (see docs/powerbi.md).
    """
    res = tw.write_powerbi_kit(
        project_config(ctx),
        folder=folder,
        source=source,
        star_folder=star_folder,
        replace_report=replace_report,
    ).to_dict()

    def human() -> None:
        consoles.out.print(
            f"Power BI kit in {res['folder']}: {res['tables']} tables, "
            f"{res['relationships']} relationships, {res['measures']} measures "
            f"(source {res['source']}, {len(res['files'])} files; starter report "
            f"{res['report']}); open TWMB.pbip"
        )

    emit({"command": "powerbi", **res}, as_json, human)
