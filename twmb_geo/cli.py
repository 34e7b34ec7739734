"""The ``twmb`` command line: thin wrappers over the public API.

Logs and progress go to stderr, results to files, a short summary (or one JSON object with
``--json``) to stdout. User mistakes end with a one-line message and a documented exit code:
0 ok, 1 unexpected error, 2 usage or config, 3 bad input data, 4 contract or reconciliation
failure, 5 store, 6 download.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from . import __version__, api
from .config import Config, default_config, load_config, write_config
from .errors import EXIT_FAILURE, TwmbError

EXIT_CODES_HELP = """\b
Exit codes:
  0  success
  1  unexpected error (a bug: please report it)
  2  usage or config error
  3  bad input data (missing, unreadable or misformatted file)
  4  contract or reconciliation failure
  5  store error (DuckDB file)
  6  download failed (twmb fetch)
  7  publish failed (target unreachable, token refused, write failed, newer schema)
"""


def _console(stream: Any) -> Console:
    # Pipes and CI logs get a wide console instead of rich's 80-column default.
    width = None if stream.isatty() else int(os.environ.get("COLUMNS", "120"))
    return Console(file=stream, highlight=False, width=width)


out = _console(sys.stdout)
err = _console(sys.stderr)


def _bind_consoles() -> None:
    """Bind the consoles to the current streams (a new process, or CliRunner in tests)."""
    global out, err
    out, err = _console(sys.stdout), _console(sys.stderr)


class _Group(click.Group):
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
        except Exception as exc:  # a bug: keep the traceback in verbose mode
            if ctx.find_root().params.get("verbose"):
                raise
            _fail(
                ctx,
                EXIT_FAILURE,
                f"unexpected error: {type(exc).__name__}: {exc} (rerun with --verbose for the traceback)",
            )


def _fail(ctx: click.Context, code: int, message: str) -> None:
    sub = ctx.invoked_subcommand
    want_json = ctx.meta.get("twmb_json", False)
    err.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True, highlight=False)
    if want_json:
        click.echo(json.dumps({"ok": False, "command": sub, "exit_code": code, "error": message}))
    ctx.exit(code)


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = RichHandler(console=err, show_path=False, show_time=False, markup=False)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    for noisy in ("pyogrio", "fiona", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    if not enabled:
        yield None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as prog:
        task = prog.add_task("starting", total=1)

        def update(desc: str, done: int, total: int) -> None:
            prog.update(task, description=desc, completed=done, total=max(total, 1))

        yield update


def _cfg(ctx: click.Context) -> Config:
    obj = ctx.find_root().obj
    if "config" not in obj:
        obj["config"] = load_config(obj["config_path"], out=obj["out"])
    return obj["config"]


def _emit(data: dict[str, Any], as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps({"ok": True, **data}, default=str, sort_keys=False))
    else:
        human()


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as one JSON object on stdout."
)


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, prog_name="twmb")
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="TWMB_CONFIG",
    help="Project config (TOML) written by `twmb init`. Default: the bundled Toronto data.",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (store, manifest, summary). Overrides the config's [project] out.",
)
@click.option(
    "--quiet", "-q", is_flag=True, help="Only warnings and errors on stderr; no progress bars."
)
@click.option(
    "--verbose", "-v", is_flag=True, help="Debug logging, and tracebacks for unexpected errors."
)
@click.pass_context
def main(
    ctx: click.Context, config_path: Path | None, out: Path | None, quiet: bool, verbose: bool
) -> None:
    """Toronto Water Main Break analytics: validated data, spatial units, features, hot spots.

    \b
    Typical session:
      twmb init                 write twmb.toml (sources, profiles, settings)
      twmb fetch toronto        download the City's current open data
      twmb ingest               validate sources into the DuckDB store
      twmb features             units, break links, unit-year panel, lags, hot spots
      twmb train                validate and fit risk models (cards under <out>/models)
      twmb score                rank every unit for next year (risk_scores)
      twmb simulate             Monte Carlo of the next years and a renewal scenario
      twmb publish              Power BI star schema: Parquet/CSV, DuckDB, Turso
      twmb powerbi              Power BI kit: Power Query scripts and a PBIP model
      twmb map                  map exports, static PNG maps, offline HTML map
      twmb report               the run report (HTML and Markdown)
      twmb run                  the whole job on the configured (default: bundled) data
      twmb run --example synthetic   the same on a generated city with pipes and streets
    """
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose cannot be used together")
    _bind_consoles()
    _setup_logging(verbose, quiet)
    ctx.obj = {"config_path": config_path, "out": out, "quiet": quiet, "verbose": verbose}


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), default=Path("twmb.toml"))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@json_option
@click.pass_context
def init(ctx: click.Context, path: Path, force: bool, as_json: bool) -> None:
    """Write a project config (TOML) to PATH (default twmb.toml).

    The config lists the bundled Toronto sources; edit it to point at other files or add
    profiles for another city (see docs/profiles.md).
    """
    root = ctx.find_root().obj
    cfg = default_config(root["out"] or "out")
    written = write_config(cfg, path, overwrite=force)
    load_config(written)  # what we write must load
    _emit(
        {"command": "init", "config": str(written)}, as_json, lambda: out.print(f"wrote {written}")
    )


@main.command()
@click.argument("sources", nargs=-1)
@json_option
@click.pass_context
def ingest(ctx: click.Context, sources: tuple[str, ...], as_json: bool) -> None:
    """Validate sources into the store (all enabled sources, or the SOURCES ids given).

    Each source is one transaction: rows in = accepted + quarantined, or nothing is written.
    """
    cfg = _cfg(ctx)
    with _progress(not ctx.find_root().obj["quiet"] and not as_json) as prog:
        report = api.ingest_sources(cfg, list(sources) or None, progress=prog)
    data = {"command": "ingest", **report.to_dict(), "manifest": str(cfg.out_dir / "manifest.json")}
    _emit(data, as_json, lambda: _print_sources(data["sources"], data["store"]))


def _print_sources(sources: list[dict[str, Any]], store: str) -> None:
    t = Table(title="Sources", title_justify="left")
    for col in ("source", "kind", "rows in", "accepted", "quarantined", "by reason"):
        t.add_column(
            col, justify="right" if col in ("rows in", "accepted", "quarantined") else "left"
        )
    for s in sources:
        reasons = ", ".join(f"{k} {v}" for k, v in s["quarantined_by_reason"].items()) or "-"
        t.add_row(
            s["source_id"],
            s["kind"],
            f"{s['rows_in']:,}",
            f"{s['accepted']:,}",
            f"{s['quarantined']:,}",
            reasons,
        )
    out.print(t)
    out.print(f"store: {store}")


@main.command()
@click.option(
    "--example",
    type=click.Choice(["toronto", "synthetic"]),
    default=None,
    help="Run a built-in example instead of the config: the bundled Toronto data, or a "
    "generated synthetic city with pipes and streets (written to <out>/synthetic-city).",
)
@click.option(
    "--pipes",
    "n_pipes",
    type=click.IntRange(min=100),
    default=None,
    help="Synthetic example: active pipes (default 49,000, Toronto's size).",
)
@click.option("--seed", type=int, default=None, help="Synthetic example: random seed (default 42).")
@click.option(
    "--no-features",
    is_flag=True,
    help="Only ingest and summarise (skip the feature and model stages).",
)
@click.option("--no-model", is_flag=True, help="Skip training, scoring and simulation.")
@click.option(
    "--no-publish",
    is_flag=True,
    help="Skip the publish of the star schema to the local targets (folder, DuckDB, Turso file).",
)
@click.option("--no-report", is_flag=True, help="Skip the maps and the run report.")
@json_option
@click.pass_context
def run(
    ctx: click.Context,
    example: str | None,
    n_pipes: int | None,
    seed: int | None,
    no_features: bool,
    no_model: bool,
    no_publish: bool,
    no_report: bool,
    as_json: bool,
) -> None:
    """Run the main job on the configured sources (default: the bundled Toronto data).

    Ingests every source, builds the spatial features (units, break links, panel, lags,
    hot spots), trains and validates the risk models with defaults, scores the latest
    year, simulates the next years, publishes the Power BI star schema to the local
    targets (<out>/star/, <out>/star.duckdb, <out>/turso/twmb_star.db), writes the maps
    (<out>/maps/) and the report (<out>/report/report.html), prints a summary and writes
    <out>/summary.json.
    """
    root = ctx.find_root().obj
    if example == "synthetic":
        out_dir = (root["out"] or Path("out")).resolve()
        with _progress(not root["quiet"] and not as_json) as prog:
            summary = api.synthetic_example(
                out_dir,
                n_pipes=n_pipes,
                seed=seed,
                progress=prog,
                with_features=not no_features,
                with_model=not no_model,
                with_publish=not no_publish,
                with_report=not no_report,
            ).to_dict()
    else:
        if n_pipes is not None or seed is not None:
            raise click.UsageError("--pipes and --seed only apply to --example synthetic")
        cfg = default_config(root["out"] or "out") if example == "toronto" else _cfg(ctx)
        with _progress(not root["quiet"] and not as_json) as prog:
            summary = api.run(
                cfg,
                progress=prog,
                with_features=not no_features,
                with_model=not no_model,
                with_publish=not no_publish,
                with_report=not no_report,
            ).to_dict()
    _emit({"command": "run", **summary}, as_json, lambda: _print_summary(summary))


@main.command()
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
    type=click.Choice(["geojson", "csv"]),
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
    from .synth import make_city, write_city

    city = make_city(n_pipes=n_pipes, seed=seed)
    paths = write_city(city, folder, formats=formats or ("geojson",))
    data = {
        "command": "synth",
        "folder": str(folder),
        "files": {k: str(v) for k, v in paths.items()},
        **city.figures(),
    }

    def human() -> None:
        for k, v in city.figures().items():
            out.print(f"{k}: {v}")
        out.print(f"config: {paths['config']}")

    _emit(data, as_json, human)


def _print_summary(s: dict[str, Any]) -> None:
    _print_sources(s["sources"], s["store"])
    if "breaks_per_year" in s:
        t = Table(title=f"Breaks per year ({s['breaks_total']:,} accepted)", title_justify="left")
        years = list(s["breaks_per_year"].items())
        half = (len(years) + 1) // 2
        for _ in range(2):
            t.add_column("year")
            t.add_column("breaks", justify="right")
        for i in range(half):
            row = [str(years[i][0]), f"{years[i][1]:,}"]
            row += (
                [str(years[i + half][0]), f"{years[i + half][1]:,}"]
                if i + half < len(years)
                else ["", ""]
            )
            t.add_row(*row)
        out.print(t)
    if s.get("top_neighbourhoods"):
        t = Table(title="Top neighbourhoods by breaks per year", title_justify="left")
        for col in ("code", "neighbourhood", "breaks/yr", "breaks/km²/yr"):
            t.add_column(col, justify="left" if col in ("code", "neighbourhood") else "right")
        for r in s["top_neighbourhoods"]:
            t.add_row(
                r["area_code"],
                r["area_name"],
                f"{r['breaks_per_year']:.1f}",
                f"{r['breaks_per_km2_per_year']:.2f}",
            )
        out.print(t)
    if s.get("features"):
        _print_features(s["features"])
    if s.get("model"):
        _print_models(s["model"]["models"])
        _print_scores(s["model"]["scores"])
        _print_simulations(s["model"]["simulations"])
    if s.get("publish"):
        pub = s["publish"]
        out.print(f"published {pub['publish_id']}: " + ", ".join(pub["targets"].values()))
    if s.get("report"):
        out.print(f"maps: {s['maps']['folder']}")
        out.print(f"report: {s['report']['html']}")
    if s.get("warnings"):
        err.print(f"[yellow]{len(s['warnings'])} warnings[/] (see manifest.json)", markup=True)
    out.print(f"summary: {s['summary_path']}")


@main.command("features")
@json_option
@click.pass_context
def features_cmd(ctx: click.Context, as_json: bool) -> None:
    """Organise units and build features from the store (after `twmb ingest`).

    Pipes, street segments, H3 cells and neighbourhoods become units; breaks are linked to
    each; spatial graphs, the unit-year panel (history up to each year, next-year targets),
    spatial lags, global Moran's I and LISA hot spots are written to the store.
    """
    cfg = _cfg(ctx)
    with _progress(not ctx.find_root().obj["quiet"] and not as_json) as prog:
        rep = api.build_features(cfg, progress=prog)
    _emit({"command": "features", **rep}, as_json, lambda: _print_features(rep))


def _print_features(f: dict[str, Any]) -> None:
    t = Table(
        title=f"Units and break links ({f['years'][0]}-{f['years'][1]})", title_justify="left"
    )
    for col in ("unit type", "units", "breaks matched", "unmatched (reason)"):
        t.add_column(col, justify="right" if col in ("units", "breaks matched") else "left")
    for ut in ("pipe", "street", "cell", "neighbourhood"):
        if ut not in f["units"]:
            continue
        m = f["matching"].get(ut, {})
        un = (
            ", ".join(
                f"{k.removeprefix('unmatched_')} {v:,}" for k, v in m.items() if k != "matched"
            )
            or "-"
        )
        t.add_row(ut, f"{f['units'][ut]:,}", f"{m.get('matched', 0):,}", un)
    out.print(t)
    g = Table(title="Spatial graphs", title_justify="left")
    for col in ("unit type", "graph", "builder", "mean nbrs", "islands", "components"):
        g.add_column(col)
    for r in f["graphs"]:
        g.add_row(
            r["unit_type"],
            r["graph"],
            r["builder"],
            f"{r['mean_neighbours']:.1f}",
            str(r["n_islands"]),
            str(r["n_components"]),
        )
    out.print(g)
    if f.get("moran"):
        ms = f["moran"]
        out.print(
            "Global Moran's I of yearly cell break counts: "
            + f"{min(m['moran_i'] for m in ms):.3f}..{max(m['moran_i'] for m in ms):.3f} "
            + f"(p_sim <= {max(m['p_sim'] for m in ms):.3f} in every year)"
        )
    if f.get("hotspots"):
        out.print(
            "Hot-spot persistence (cells): "
            + ", ".join(f"{k} {v:,}" for k, v in f["hotspots"].items())
        )


# --------------------------------------------------------------------------- models

unit_type_option = click.option(
    "--unit-type",
    "unit_types",
    multiple=True,
    type=click.Choice(["pipe", "street", "cell", "neighbourhood"]),
    help="Only these unit types (repeatable). Default: [model] unit_types present in the panel.",
)


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def _print_models(models: list[dict[str, Any]]) -> None:
    t = Table(title="Risk models (mean over validation folds)", title_justify="left")
    for col in (
        "unit type",
        "version",
        "forward @5%",
        "forward @10%",
        "spatial @5%",
        "random @5%",
        "best baseline @5%",
    ):
        t.add_column(col, justify="left" if col in ("unit type", "version") else "right")
    for m in models:
        base = m.get("best_baseline")
        t.add_row(
            m["unit_type"],
            m["model_version"],
            _pct(m.get("forward_capture_5pct")),
            _pct(m.get("forward_capture_10pct")),
            _pct(m.get("spatial_capture_5pct")),
            _pct(m.get("random_capture_5pct")),
            f"{_pct(m.get('best_baseline_capture_5pct'))} ({base})" if base else "-",
        )
    out.print(t)
    for m in models:
        for w in m.get("warnings", []):
            err.print(f"[yellow]leakage guard ({m['unit_type']}):[/] {w}", markup=True)
        out.print(f"card: {m['card']}")


def _print_scores(scores: list[dict[str, Any]]) -> None:
    for s in scores:
        t = Table(
            title=f"Riskiest {s['unit_type']} units for {s['target_year']} "
            f"(expected {s['expected_breaks']:,.0f} breaks in all {s['units']:,} units)",
            title_justify="left",
        )
        for col in ("rank", "unit", "expected", "P(break)", "tier", "drivers"):
            t.add_column(
                col, justify="right" if col in ("rank", "expected", "P(break)") else "left"
            )
        for r in s["top"]:
            t.add_row(
                str(r["rank"]),
                str(r["unit_id"]),
                f"{r['expected_breaks']:.2f}",
                f"{r['probability']:.2f}",
                r["tier"],
                r["drivers"],
            )
        out.print(t)


def _print_simulations(sims: list[dict[str, Any]]) -> None:
    for s in sims:
        key = f"breaks_over_{s['horizon']}_years"
        b = s[key]
        r = s["renewal"]
        what = (
            f"{r['km_replaced']:.1f} km"
            if r.get("km_replaced") is not None
            else f"{r['units_replaced']} units"
        )
        out.print(
            f"{s['unit_type']}: breaks over the next {s['horizon']} years: expected "
            f"{b['expected']:,.0f} (P10 {b['p10']:,.0f}, P50 {b['p50']:,.0f}, P90 {b['p90']:,.0f}); "
            f"renewing the riskiest {what} avoids {r['expected_breaks_avoided']:,.0f} "
            f"(P10 {r['avoided_p10']:,.0f}, P90 {r['avoided_p90']:,.0f})"
        )


@main.command("train")
@unit_type_option
@json_option
@click.pass_context
def train_cmd(ctx: click.Context, unit_types: tuple[str, ...], as_json: bool) -> None:
    """Validate and fit the break-risk model per unit type (after `twmb features`).

    Forward, spatial-block, spatial+temporal and random K-fold validation of the model and
    the baselines; the final model and its card go to <out>/models/<version>/.
    """
    cfg = _cfg(ctx)
    with _progress(not ctx.find_root().obj["quiet"] and not as_json) as prog:
        res = api.train_models(cfg, unit_types=list(unit_types) or None, progress=prog).to_dict()
    _emit({"command": "train", **res}, as_json, lambda: _print_models(res["models"]))


@main.command("score")
@unit_type_option
@click.option("--model", "model_version", default=None, help="Model version (default: newest).")
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Riskiest units to print.",
)
@json_option
@click.pass_context
def score_cmd(
    ctx: click.Context,
    unit_types: tuple[str, ...],
    model_version: str | None,
    top: int,
    as_json: bool,
) -> None:
    """Score the latest year of every unit: probability, expected breaks, rank, tier, drivers.

    Rows are appended to the store's risk_scores with the model version and run id; the new
    rows are flagged current, earlier ones kept.
    """
    res = api.score_units(
        _cfg(ctx), unit_types=list(unit_types) or None, model_version=model_version, top=top
    ).to_dict()
    _emit({"command": "score", **res}, as_json, lambda: _print_scores(res["scores"]))


@main.command("simulate")
@unit_type_option
@click.option(
    "--horizon",
    type=click.IntRange(1, 50),
    default=None,
    help="Years ahead (default [model] horizon, 10).",
)
@click.option(
    "--sims",
    "n_sims",
    type=click.IntRange(min=10),
    default=None,
    help="Monte Carlo runs (default [model] n_sims, 1000).",
)
@click.option(
    "--replace-km",
    type=click.FloatRange(min=0),
    default=None,
    help="Renewal scenario: replace the riskiest N km (default [model] renewal_km).",
)
@click.option(
    "--replace-units",
    type=click.IntRange(min=0),
    default=None,
    help="Renewal scenario for units without length: replace the riskiest N units.",
)
@click.option("--seed", type=int, default=None, help="Random seed (default [model] seed).")
@json_option
@click.pass_context
def simulate_cmd(
    ctx: click.Context,
    unit_types: tuple[str, ...],
    horizon: int | None,
    n_sims: int | None,
    replace_km: float | None,
    replace_units: int | None,
    seed: int | None,
    as_json: bool,
) -> None:
    """Monte Carlo of breaks over the next years (P10/P50/P90/P95) and a renewal scenario."""
    res = api.simulate_breaks(
        _cfg(ctx),
        unit_types=list(unit_types) or None,
        horizon=horizon,
        n_sims=n_sims,
        replace_km=replace_km,
        replace_units=replace_units,
        seed=seed,
    ).to_dict()
    _emit({"command": "simulate", **res}, as_json, lambda: _print_simulations(res["simulations"]))


@main.command("publish")
@click.option(
    "--to",
    "targets",
    type=click.Choice(["folder", "duckdb", "turso-file", "turso"]),
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
    type=click.Choice(["parquet", "csv"]),
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
    type=click.Choice(["sync", "http"]),
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
    with _progress(not ctx.find_root().obj["quiet"] and not as_json) as prog:
        res = api.publish_star(
            _cfg(ctx),
            targets=targets or None,
            folder=folder,
            formats=formats or ("parquet", "csv"),
            duckdb_path=duckdb_file,
            turso_file=turso_file,
            turso_url=turso_url,
            turso_mode=turso_mode,
            progress=prog,
        ).to_dict()
    res.pop("checksums", None)

    def human() -> None:
        t = Table(title=f"Star schema {res['publish_id']}", title_justify="left")
        t.add_column("table")
        t.add_column("rows", justify="right")
        for name, n in res["rows"].items():
            t.add_row(name, f"{n:,}")
        out.print(t)
        for tgt in res["targets"]:
            state = "unchanged" if tgt.get("changed") is False else "written"
            out.print(f"{tgt['target']}: {tgt['location']} ({state})")

    _emit({"command": "publish", **res}, as_json, human)


@main.command("map")
@click.option(
    "--folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default <out>/maps).",
)
@click.option(
    "--format",
    "formats",
    type=click.Choice(["geojson", "gpkg", "geoparquet"]),
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
    with _progress(not ctx.find_root().obj["quiet"] and not as_json) as prog:
        res = api.render_maps(
            _cfg(ctx),
            folder=folder,
            formats=formats or ("geojson", "gpkg", "geoparquet"),
            png=not no_png,
            html=not no_html,
            progress=prog,
        ).to_dict()

    def human() -> None:
        t = Table(title=f"Map layers in {res['folder']}", title_justify="left")
        t.add_column("layer")
        t.add_column("features", justify="right")
        for name, n in res["rows"].items():
            t.add_row(name, f"{n:,}")
        out.print(t)
        for name, path in res.get("png", {}).items():
            out.print(f"{name}: {path}")
        if res.get("html"):
            out.print(f"html map: {res['html']['path']}")

    _emit({"command": "map", **res}, as_json, human)


@main.command("report")
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
    cfg = _cfg(ctx)
    with _progress(not ctx.find_root().obj["quiet"] and not as_json) as prog:
        maps = api.render_maps(cfg, formats=(), progress=prog)
        res = api.write_report(cfg, folder=folder, maps=maps).to_dict()
    res = {k: str(v) if isinstance(v, Path) else v for k, v in res.items()}
    _emit({"command": "report", **res}, as_json, lambda: out.print(f"report: {res['html']}"))


@main.command("powerbi")
@click.option(
    "--folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Kit folder (default <out>/powerbi).",
)
@click.option(
    "--source",
    type=click.Choice(["turso", "parquet"]),
    default="turso",
    show_default=True,
    help="What the model's tables read: the Turso database over HTTP or the Parquet folder.",
)
@json_option
@click.pass_context
def powerbi_cmd(ctx: click.Context, folder: Path | None, source: str, as_json: bool) -> None:
    """Write the Power BI kit: Power Query (M) scripts and a PBIP semantic model (TMDL).

    Generated from the star-schema contracts alone (no store needed): one Turso and one
    Parquet query per star table, the parameters TursoUrl, TursoToken and StarFolder, the
    TMDL model with relationships and DAX measures, and TWMB.pbip to open in Power BI
    Desktop (see docs/powerbi.md).
    """
    res = api.write_powerbi_kit(_cfg(ctx), folder=folder, source=source).to_dict()

    def human() -> None:
        out.print(
            f"Power BI kit in {res['folder']}: {res['tables']} tables, "
            f"{res['relationships']} relationships, {res['measures']} measures "
            f"(source {res['source']}, {len(res['files'])} files); open TWMB.pbip"
        )

    _emit({"command": "powerbi", **res}, as_json, human)


@main.group()
def models() -> None:
    """The model registry: trained models and their cards."""


@models.command("list")
@json_option
@click.pass_context
def models_list(ctx: click.Context, as_json: bool) -> None:
    """List trained models (newest first per unit type)."""
    from .model.stage import list_models

    df = list_models(_cfg(ctx))
    cols = [
        "model_version",
        "unit_type",
        "kind",
        "created_at",
        "train_start",
        "train_end",
        "forward_capture_5pct",
        "best_baseline_capture_5pct",
        "path",
    ]
    rows = df[[c for c in cols if c in df.columns]].to_dict(orient="records")

    def human() -> None:
        if not rows:
            out.print("no trained models; run `twmb train`")
            return
        t = Table(title="Models", title_justify="left")
        for col in ("version", "unit type", "trained", "years", "forward @5%", "best baseline"):
            t.add_column(col)
        for r in rows:
            t.add_row(
                r["model_version"],
                r["unit_type"],
                str(r["created_at"]),
                f"{r['train_start']}-{r['train_end']}",
                _pct(r["forward_capture_5pct"]),
                _pct(r["best_baseline_capture_5pct"]),
            )
        out.print(t)

    _emit({"command": "models list", "models": rows}, as_json, human)


@models.command("show")
@click.argument("version")
@json_option
@click.pass_context
def models_show(ctx: click.Context, version: str, as_json: bool) -> None:
    """Print the card of model VERSION (Markdown; --json for card.json)."""
    from .model.registry import load_card, render_card

    card = load_card(_cfg(ctx).out_dir / "models", version)
    _emit({"command": "models show", "card": card}, as_json, lambda: click.echo(render_card(card)))


@main.group()
def fetch() -> None:
    """Download current open data from a municipal portal."""


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
    type=click.Choice(
        ["watermain-breaks", "watermains", "toronto-centreline-tcl", "neighbourhoods"]
    ),
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
    from .errors import EXIT_FETCH
    from .io.ckan import TORONTO_CKAN_URL, fetch_toronto

    root = ctx.find_root().obj
    dest = dest or ((root["out"] or Path("out")) / "downloads")
    with _progress(not root["quiet"] and not as_json) as prog:

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

    def human() -> None:
        t = Table(title=f"Downloads in {dest}", title_justify="left")
        for col in ("package", "file", "status", "bytes"):
            t.add_column(col)
        for f in report.files:
            t.add_row(f.package, f.path.name, f.status, f"{f.bytes:,}")
        out.print(t)
        for f in report.files:
            if f.error:
                err.print(f"[red]failed:[/] {f.error}", markup=True)

    if as_json:
        click.echo(json.dumps(data, default=str))
    else:
        human()
    if not report.ok:
        ctx.exit(EXIT_FETCH)


@main.command()
@json_option
@click.pass_context
def profiles(ctx: click.Context, as_json: bool) -> None:
    """List the source profiles (built-in and those of the config)."""
    from .io.profiles import builtin_profiles

    root = ctx.find_root().obj
    extra = _cfg(ctx).user_profiles() if root["config_path"] else []
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
        out.print(t)

    _emit({"command": "profiles", "profiles": rows}, as_json, human)


def entry() -> None:  # pragma: no cover - console script shim
    main(prog_name="twmb")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
