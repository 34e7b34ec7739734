"""Analysis commands: ``features``, ``train``, ``score``, ``simulate`` and ``models``."""

from __future__ import annotations

import click
from rich.table import Table

import twmb_geo as tw

from ._common import (
    consoles,
    emit,
    json_option,
    pct,
    progress_bar,
    project_config,
    unit_type_option,
)
from ._tables import print_features, print_models, print_scores, print_simulations

__all__ = ["features_cmd", "models", "score_cmd", "simulate_cmd", "train_cmd"]

#: Registry columns of ``twmb models list --json``, in order.
MODEL_LIST_COLUMNS = (
    "model_version",
    "unit_type",
    "kind",
    "created_at",
    "train_start",
    "train_end",
    "forward_capture_5pct",
    "best_baseline_capture_5pct",
    "path",
)


@click.command("features")
@json_option
@click.pass_context
def features_cmd(ctx: click.Context, as_json: bool) -> None:
    """Organise units and build features from the store (after `twmb ingest`).

    Pipes, street segments, H3 cells and neighbourhoods become units; breaks are linked to
    each; spatial graphs, the unit-year panel (history up to each year, next-year targets),
    spatial lags, global Moran's I and LISA hot spots are written to the store.
    """
    cfg = project_config(ctx)
    with progress_bar(ctx, as_json) as prog:
        rep = tw.build_features(cfg, progress=prog).to_dict()
    emit({"command": "features", **rep}, as_json, lambda: print_features(rep))


@click.command("train")
@unit_type_option
@json_option
@click.pass_context
def train_cmd(ctx: click.Context, unit_types: tuple[str, ...], as_json: bool) -> None:
    """Validate and fit the break-risk model per unit type (after `twmb features`).

    Forward, spatial-block, spatial+temporal and random K-fold validation of the model and
    the baselines; the final model and its card go to <out>/models/<version>/.
    """
    cfg = project_config(ctx)
    with progress_bar(ctx, as_json) as prog:
        res = tw.train_models(cfg, unit_types=list(unit_types) or None, progress=prog).to_dict()
    emit({"command": "train", **res}, as_json, lambda: print_models(res["models"]))


@click.command("score")
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
    res = tw.score_units(
        project_config(ctx),
        unit_types=list(unit_types) or None,
        model_version=model_version,
        top=top,
    ).to_dict()
    emit({"command": "score", **res}, as_json, lambda: print_scores(res["scores"]))


@click.command("simulate")
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
    res = tw.simulate_breaks(
        project_config(ctx),
        unit_types=list(unit_types) or None,
        horizon=horizon,
        n_sims=n_sims,
        replace_km=replace_km,
        replace_units=replace_units,
        seed=seed,
    ).to_dict()
    emit({"command": "simulate", **res}, as_json, lambda: print_simulations(res["simulations"]))


@click.group()
def models() -> None:
    """The model registry: trained models and their cards."""


@models.command("list")
@json_option
@click.pass_context
def models_list(ctx: click.Context, as_json: bool) -> None:
    """List trained models (newest first per unit type)."""
    df = tw.list_models(project_config(ctx))
    rows = df[[c for c in MODEL_LIST_COLUMNS if c in df.columns]].to_dict(orient="records")

    def human() -> None:
        if not rows:
            consoles.out.print("no trained models; run `twmb train`")
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
                pct(r["forward_capture_5pct"]),
                pct(r["best_baseline_capture_5pct"]),
            )
        consoles.out.print(t)

    emit({"command": "models list", "models": rows}, as_json, human)


@models.command("show")
@click.argument("version")
@json_option
@click.pass_context
def models_show(ctx: click.Context, version: str, as_json: bool) -> None:
    """Print the card of model VERSION (Markdown; --json for card.json)."""
    card = tw.load_card(project_config(ctx).out_dir / "models", version)
    emit(
        {"command": "models show", "card": card}, as_json, lambda: click.echo(tw.render_card(card))
    )
