"""The Model cards section: validation, optimism, curves, calibration, importance, limits."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ...errors import InputDataError
from ...model.registry import load_card
from . import queries
from ._format import fmt_int, fmt_signed, mean_sd, missing, unit_key
from .charts import calibration_chart, capture_chart, importance_chart
from .document import (
    SECTIONS,
    Block,
    Bullets,
    Code,
    Figure,
    Heading,
    Para,
    Section,
    Strong,
    note,
    para,
    table,
)
from .queries import ReportContext

__all__ = ["models_section"]

_SCHEME_ORDER = ("forward", "spatial", "spatiotemporal", "random")


def models_section(ctx: ReportContext) -> Section:
    """The card of the current model of every unit type."""
    sec = Section(SECTIONS[4])
    found = queries.model_versions(ctx)
    versions = {u: found[u] for u in sorted(found, key=unit_key)}
    if not versions:
        sec.blocks.append(note("No model was trained in this run (no models table)."))
        return sec
    sec.blocks.append(
        para(
            "One model per unit type. Capture = share of next-year breaks in the riskiest "
            "5 % / 10 % of the network; every ranking is scored on the same folds. Trust the "
            "forward and spatial schemes: random K-fold ignores space and time and is shown "
            "only to measure how much that overstates skill."
        )
    )
    for unit_type, version in versions.items():
        sec.blocks.append(Heading(f"{unit_type.capitalize()} model {version}"))
        card = _load_card(ctx, version)
        if card is None:
            sec.blocks.append(note(f"The card of {version} is not in the model registry."))
            continue
        sec.blocks += _card_blocks(card)
    return sec


def _load_card(ctx: ReportContext, version: str) -> dict[str, Any] | None:
    """The card from ``<out>/models``, else from the folder the ``models`` row names."""
    roots = [ctx.cfg.out_dir / "models"]
    roots += [Path(p).parent for p in queries.model_paths(ctx, version)]
    for root in roots:
        try:
            return load_card(root, version)
        except (InputDataError, OSError, ValueError):
            continue
    return None


def _card_blocks(card: Mapping[str, Any]) -> list[Block]:
    """One card: validation, optimism, curves, calibration, importance, guard, limits."""
    version = str(card.get("model_version", "model"))
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", str(card.get("unit_type", version)))
    blocks: list[Block] = []
    statement = (card.get("champion") or {}).get("statement")
    if statement:
        blocks.append(para(str(statement)))
    blocks.append(_card_intro(card))
    blocks += _validation_blocks(card)
    blocks += _optimism_blocks(card)
    fwd = card.get("forward") or {}
    if fwd.get("capture_curves") and fwd.get("fracs"):
        blocks.append(Heading("Capture curves against the baselines", 4))
        blocks.append(
            Figure(f"capture_{stem}.png", capture_chart(card), f"Capture curves, {version}")
        )
    if fwd.get("calibration"):
        blocks.append(Heading("Calibration", 4))
        blocks.append(
            Figure(f"calibration_{stem}.png", calibration_chart(card), f"Calibration, {version}")
        )
    blocks += _importance_blocks(card, stem)
    blocks += _guard_blocks(card)
    return blocks


def _card_intro(card: Mapping[str, Any]) -> Para:
    """What the model is, its training window and what it scores."""
    tw = card.get("training_window") or {}
    fy, ty = tw.get("feature_years") or ["?", "?"], tw.get("target_years") or ["?", "?"]
    sc = card.get("scoring") or {}
    share = "length" if card.get("weight") == "length_km" else "units"
    return para(
        f"Kind {card.get('kind', '?')} (scikit-learn {card.get('sklearn_version', '?')}), "
        f"trained {card.get('created_at', '?')} in run ",
        Code(str(card.get("run_id", "?"))),
        f"; feature years {fy[0]}–{fy[1]}, targets {ty[0]}–{ty[1]}; "
        f"{fmt_int(tw.get('rows'))} unit-years, {fmt_int(tw.get('units'))} units, "
        f"{fmt_int(tw.get('breaks'))} breaks. Scores the year {sc.get('target_year', '?')} "
        f"(features of {sc.get('feature_year', '?')}). Capture is measured on the share "
        f"of {share}.",
    )


def _validation_blocks(card: Mapping[str, Any]) -> list[Block]:
    """Every scheme's metrics for the model and the baselines side by side."""
    validation = card.get("validation") or {}
    if not validation:
        return [note("The card holds no validation results.")]
    schemes = [s for s in _SCHEME_ORDER if s in validation]
    schemes += sorted(s for s in validation if s not in _SCHEME_ORDER)
    rows: list[tuple[str, ...]] = []
    strong: list[int] = []
    metrics = ("capture_5pct", "capture_10pct", "roc_auc", "pr_auc")
    for scheme in schemes:
        block = validation[scheme]
        models = block.get("models", {})
        for name in ["champion", *sorted(n for n in models if n != "champion")]:
            if name not in models:
                continue
            if name == "champion":
                strong.append(len(rows))
            rows.append(
                (
                    scheme,
                    name,
                    fmt_int(block.get("folds")),
                    *(mean_sd(models[name].get(m)) for m in metrics),
                )
            )
    return [
        Heading("Validation schemes side by side", 4),
        table(
            ("scheme", "ranking", "folds", "capture @5 %", "capture @10 %", "ROC AUC", "PR AUC"),
            rows,
            "llrrrrr",
            strong=strong,
            caption="Mean ± standard deviation over folds; the model's rows in bold.",
        ),
    ]


def _optimism_blocks(card: Mapping[str, Any]) -> list[Block]:
    """How much random K-fold overstates skill against the honest schemes."""
    opt = card.get("random_cv_optimism") or {}
    if not opt:
        return [note("No random-CV optimism in the card (random or comparison scheme absent).")]
    rows = [
        (
            metric,
            fmt_signed(row.get("random_minus_spatial")),
            fmt_signed(row.get("random_minus_forward")),
        )
        for metric, row in opt.items()
    ]
    return [
        Heading("Random-CV optimism", 4),
        para(
            "How much random K-fold overstates the model's skill: positive values mean "
            "random K-fold looks better than the honest scheme."
        ),
        table(("metric", "random − spatial", "random − forward"), rows, "lrr"),
    ]


def _importance_blocks(card: Mapping[str, Any], stem: str) -> list[Block]:
    """Permutation importance chart (capture at 5 % and ROC AUC)."""
    imp = pd.DataFrame(card.get("importance") or [])
    blocks: list[Block] = [Heading("Permutation importance", 4)]
    if imp.empty:
        return [
            *blocks,
            note("No permutation importance in the card (measured on held-out spatial folds)."),
        ]
    metrics = [m for m in ("capture_5pct", "roc_auc") if m in set(imp["metric"])]
    metrics = metrics or sorted(imp["metric"].unique())[:2]
    png = importance_chart(imp, metrics)
    return [*blocks, Figure(f"importance_{stem}.png", png, "Permutation importance")]


def _guard_blocks(card: Mapping[str, Any]) -> list[Block]:
    """Leakage warnings, skipped schemes, year-to-year variation, limitations."""
    blocks: list[Block] = [Heading("Leakage guard", 4)]
    warns = [str(w) for w in card.get("leakage_warnings") or []]
    if warns:
        blocks.append(Bullets(tuple((Strong("WARNING: "), w) for w in warns)))
    else:
        blocks.append(
            para(
                "No warning: no honest scheme shows a ROC AUC above 0.95 or a capture more "
                "than twice the best baseline's."
            )
        )
    skipped = [str(s) for s in card.get("skipped_schemes") or []]
    if skipped:
        blocks.append(Bullets(tuple(("Skipped: ", s) for s in skipped)))
    year_cv = (card.get("forward") or {}).get("year_cv")
    if year_cv is not None and not missing(year_cv):
        blocks.append(
            para(
                "City-wide totals vary from year to year beyond Poisson noise by a "
                f"coefficient of variation of {float(year_cv):.2f} (carried into the "
                "simulation bands)."
            )
        )
    limits = [str(t) for t in card.get("limitations") or []]
    blocks.append(Heading("Limitations", 4))
    blocks.append(Bullets(tuple((t,) for t in limits)) if limits else note("None stated."))
    notes = [str(n) for n in card.get("feature_notes") or []]
    if notes:
        blocks.append(Heading("Features left out", 4))
        blocks.append(Bullets(tuple((n,) for n in notes)))
    return blocks
