"""The ``twmb`` command line: thin wrappers over the public API.

Logs and progress go to stderr, results to files, a short summary (or one JSON object with
``--json``) to stdout. User mistakes end with a one-line message and a documented exit code:
0 ok, 1 unexpected error, 2 usage or config, 3 bad input data, 4 contract or reconciliation
failure, 5 store, 6 download, 7 publish.

The commands live in one module per group: :mod:`.data` (init, ingest, fetch, profiles,
synth), :mod:`.job` (run), :mod:`.analysis` (features, train, score, simulate, models) and
:mod:`.outputs` (publish, map, report, powerbi); :mod:`._common` holds what they share.
"""

from __future__ import annotations

from pathlib import Path

import click

from .. import __version__
from ._common import EXIT_CODES_HELP, TwmbGroup, consoles, setup_logging
from .analysis import features_cmd, models, score_cmd, simulate_cmd, train_cmd
from .data import fetch, ingest, init, profiles, synth
from .job import run_cmd
from .outputs import map_cmd, powerbi_cmd, publish_cmd, report_cmd

__all__ = ["main"]


@click.group(
    cls=TwmbGroup,
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
    help="Project config (TOML) written by `twmb init`. Default: the bundled example city.",
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
    """Water-main break analytics: validated data, spatial units, features, hot spots.

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
    consoles.bind()
    setup_logging(verbose, quiet)
    ctx.obj = {"config_path": config_path, "out": out, "quiet": quiet, "verbose": verbose}


for _command in (
    init,
    ingest,
    fetch,
    profiles,
    synth,
    run_cmd,
    features_cmd,
    train_cmd,
    score_cmd,
    simulate_cmd,
    models,
    publish_cmd,
    map_cmd,
    report_cmd,
    powerbi_cmd,
):
    main.add_command(_command)
