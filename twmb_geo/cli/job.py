"""``twmb run``: the whole job on the configured data or a built-in example."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

import twmb_geo as tw

from ._common import emit, json_option, progress_bar, project_config, root_options
from ._tables import print_summary

__all__ = ["EXAMPLES", "run_cmd"]

#: The built-in examples of ``twmb run --example``.
EXAMPLES = ("toronto", "synthetic")


@click.command("run")
@click.option(
    "--example",
    type=click.Choice(list(EXAMPLES)),
    default=None,
    help="Run a built-in example instead of the config: the bundled example city, or a "
    "generated synthetic city with pipes and streets (written to <out>/synthetic-city).",
)
@click.option(
    "--pipes",
    "n_pipes",
    type=click.IntRange(min=100),
    default=None,
    help="Synthetic example: active pipes (default 49,000, the bundled city's size).",
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
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Where partitioned work runs: 'local' (a Dask LocalCluster), a Dask scheduler "
    "address such as tcp://host:8786, or '' (this process); overrides [compute] scheduler.",
)
@json_option
@click.pass_context
def run_cmd(
    ctx: click.Context,
    example: str | None,
    n_pipes: int | None,
    seed: int | None,
    no_features: bool,
    no_model: bool,
    no_publish: bool,
    no_report: bool,
    scheduler: str | None,
    as_json: bool,
) -> None:
    """Run the main job on the configured sources (default: the bundled example city).

    Ingests every source, builds the spatial features (units, break links, panel, lags,
    hot spots), trains and validates the risk models with defaults, scores the latest
    year, simulates the next years, publishes the Power BI star schema to the local
    targets (<out>/star/, <out>/star.duckdb, <out>/turso/twmb_star.db), writes the maps
    (<out>/maps/) and the report (<out>/report/report.html), prints a summary and writes
    <out>/summary.json.
    """
    out = root_options(ctx)["out"]
    stages = {
        "with_features": not no_features,
        "with_model": not no_model,
        "with_publish": not no_publish,
        "with_report": not no_report,
    }
    if example == "synthetic" and scheduler is not None:
        raise click.UsageError("--scheduler applies to the project config and --example toronto")
    if example == "synthetic":
        out_dir = (out or Path("out")).resolve()
        with progress_bar(ctx, as_json) as prog:
            result = tw.synthetic_example(
                out_dir, n_pipes=n_pipes, seed=seed, progress=prog, **stages
            )
    else:
        if n_pipes is not None or seed is not None:
            raise click.UsageError("--pipes and --seed only apply to --example synthetic")
        cfg = tw.default_config(out or "out") if example == "toronto" else project_config(ctx)
        if scheduler is not None:
            cfg = replace(cfg, compute=replace(cfg.compute, scheduler=scheduler))
            cfg.compute.cluster  # noqa: B018 - checked here: a bad address is a usage error
        with progress_bar(ctx, as_json) as prog:
            result = tw.run(cfg, progress=prog, **stages)
    summary = result.to_dict()
    emit({"command": "run", **summary}, as_json, lambda: print_summary(summary))
