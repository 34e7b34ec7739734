"""The model registry on disk: ``<out>/models/<version>/`` with the model and its card.

Each trained model is a folder holding ``model.joblib`` (the fitted
:class:`~twmb_geo.model.champion.ChampionModel`: a learned candidate, a baseline or a
blend, chosen by nested forward validation), ``card.json`` (everything needed to
judge it: data hashes, training window, features, parameters, every validation scheme's
metrics, baselines, importance, limitations) and ``card.md`` (the same for people). The
store's ``models`` table indexes the folders.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import joblib

from ..core.files import atomic_path, atomic_write
from ..errors import InputDataError
from .champion import ChampionModel

__all__ = ["load_card", "load_model", "render_card", "save_model"]

_FILES = ("model.joblib", "card.json", "card.md")


def save_model(root: Path, version: str, model: ChampionModel, card: dict[str, Any]) -> Path:
    """Write the model, ``card.json`` and ``card.md`` under ``root/version`` (atomically per file)."""
    folder = Path(root) / version
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "model.joblib") as tmp:
        joblib.dump(model, tmp, compress=3)
    text = json.dumps(card, indent=2, sort_keys=False, default=_json_default) + "\n"
    atomic_write(folder / "card.json", text.encode("utf-8"), mode=None)
    atomic_write(folder / "card.md", render_card(card).encode("utf-8"), mode=None)
    return folder


def _json_default(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def _folder(root: Path, version: str) -> Path:
    folder = Path(root) / version
    missing = [f for f in _FILES if not (folder / f).is_file()]
    if missing:
        raise InputDataError(
            f"model {version!r} is incomplete or absent in {root} (missing {missing}); "
            "list models with `twmb models list` or train one with `twmb train`"
        )
    return folder


def load_model(root: Path, version: str) -> ChampionModel:
    """The fitted champion of ``version`` (only load registries you wrote yourself)."""
    model = joblib.load(_folder(root, version) / "model.joblib")
    if not isinstance(model, ChampionModel):
        raise InputDataError(f"{root / version / 'model.joblib'} is not a twmb_geo model")
    return model


def load_card(root: Path, version: str) -> dict[str, Any]:
    """The card of ``version`` as a dict."""
    return json.loads((_folder(root, version) / "card.json").read_text(encoding="utf-8"))


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.{digits}f}"
    return str(v)


_CARD_METRICS = (
    "capture_1pct",
    "capture_5pct",
    "capture_10pct",
    "capture_new_5pct",
    "precision_5pct",
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
)


def _validation_md(card: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for scheme, block in card.get("validation", {}).items():
        lines += [f"### {scheme} ({block['folds']} folds)", "", block["description"], ""]
        models = block["models"]
        names = ["model", *sorted(n for n in models if n != "model")]
        lines.append("| metric | " + " | ".join(names) + " |")
        lines.append("|---" * (len(names) + 1) + "|")
        for metric in _CARD_METRICS:
            cells = []
            for n in names:
                m = models.get(n, {}).get(metric)
                cells.append("–" if m is None else f"{_fmt(m['mean'])} ± {_fmt(m['std'])}")
            lines.append(f"| {metric} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _champion_md(champ: dict[str, Any]) -> list[str]:
    """The champion section: why it won and every candidate's outer forward skill."""
    if not champ:
        return []
    o = champ["outer"]
    lines = [
        "",
        "## Champion selection (nested forward validation)",
        "",
        f"Published: **{champ['name']}** ({champ['family']}). {champ.get('why', '')}",
        "",
        f"Outer test years {o['years'][0]}–{o['years'][-1]}: the champion of each year was "
        "chosen on the years before it and scored on it; the procedure is the 'champion' row.",
        "",
        "| ranking | capture 5 % (outer mean ± sd) | capture 10 % |",
        "|---|---|---|",
    ]

    def row(name: str, block: dict[str, Any]) -> str:
        c5, c10 = block["capture_5pct"], block["capture_10pct"]
        return (
            f"| {name} | {_fmt(c5['mean'])} ± {_fmt(c5['std'])} | "
            f"{_fmt(c10['mean'])} ± {_fmt(c10['std'])} |"
        )

    lines.append(row("**champion (procedure)**", o["champion"]))
    lines += [row(n, b) for n, b in o["candidates"].items()]
    picks = ", ".join(f"{y}: {p}" for y, p in o["picks"].items())
    lines += ["", f"Picks per outer year: {picks}."]
    return lines


def _importance_md(card: dict[str, Any]) -> list[str]:
    """The permutation-importance table of the card (empty without importance)."""
    lines: list[str] = []
    imp = [r for r in card.get("importance", []) if r["metric"] == "capture_5pct"][:15]
    if imp:
        lines += [
            "## Permutation importance (held-out spatial folds, drop in capture at 5 %)",
            "",
            "| rank | feature | mean drop | sd |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['rank']} | {r['feature']} | {_fmt(r['importance_mean'], 4)} | "
            f"{_fmt(r['importance_std'], 4)} |"
            for r in imp
        ]
        lines.append("")
    return lines


def _compute_md(card: dict[str, Any]) -> str:
    """``", 2 threads: 2 fold workers of 1 thread"`` (the card's ``compute`` block) or ""."""
    c = card.get("compute")
    if not c:
        return ""
    if not c.get("limited", True):
        return f", {c['n_jobs']} fold workers, threads not limited"
    per, n = c["threads_per_process"], c["n_jobs"]
    each = f"{per} thread{'s' * (per != 1)}"
    if n == 1:
        return f", {c['threads']} threads: folds in the main process, {each}"
    return f", {c['threads']} threads: {n} fold workers of {each}"


def render_card(card: dict[str, Any]) -> str:
    """The card as Markdown: what the model is, how well it validates and its limits."""
    h = card.get("headline", {})
    tw = card["training_window"]
    champ = card.get("champion", {})
    lines = [
        f"# Model card: {card['model_version']}",
        "",
        *([f"**{champ['statement']}**", ""] if champ.get("statement") else []),
        f"- **Unit type:** {card['unit_type']}  ",
        f"- **Kind:** {card['kind']} (scikit-learn {card.get('sklearn_version', '?')})  ",
        f"- **Trained:** {card['created_at']} (run {card['run_id']}){_compute_md(card)}  ",
        f"- **Training window:** feature years {tw['feature_years'][0]}–{tw['feature_years'][1]}, "
        f"targets {tw['target_years'][0]}–{tw['target_years'][1]}; {tw['rows']:,} unit-years, "
        f"{tw['units']:,} units, {tw['breaks']:,.0f} breaks  ",
        f"- **Scores year:** {card['scoring']['target_year']} "
        f"(features of {card['scoring']['feature_year']})",
        "",
        "## Headline (mean over folds)",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    for k, v in h.items():
        lines.append(f"| {k} | {_fmt(v)} |")
    lines += _champion_md(champ)
    lines += ["", "## Leakage guard", ""]
    warns = card.get("leakage_warnings", [])
    lines += [f"- **WARNING:** {w}" for w in warns] or [
        "No warning: no scheme shows an AUC above "
        "0.95 or a capture more than twice the best baseline's."
    ]
    lines += [f"- **Schemes disagree:** {w}" for w in card.get("scheme_warnings", [])]
    lines += [f"- **Skipped:** {m}" for m in card.get("skipped_schemes", [])]
    lines += [
        "",
        "## Random-CV optimism",
        "",
        "| metric | random − spatial | random − forward |",
        "|---|---|---|",
    ]
    for metric, row in card.get("random_cv_optimism", {}).items():
        lines.append(
            f"| {metric} | {_fmt(row.get('random_minus_spatial'))} | "
            f"{_fmt(row.get('random_minus_forward'))} |"
        )
    lines += [
        "",
        "## Validation schemes side by side",
        "",
        "Mean ± standard deviation over folds. "
        "Capture = share of next-year breaks in the riskiest share of "
        + ("length." if card.get("weight") == "length_km" else "units."),
        "",
    ]
    lines += _validation_md(card)
    lines += _importance_md(card)
    lines += ["## Data", "", f"Ingest run {card['data'].get('run_id') or '–'}; inputs:", ""]
    lines += [
        f"- `{i['path']}` sha256 `{i['sha256'][:16]}…` ({i['rows']:,} rows)"
        for i in card["data"].get("inputs", [])
    ] or ["- (no input record)"]
    lines += ["", "## Features", "", ", ".join(f"`{f}`" for f in card["features"]), ""]
    if card.get("feature_notes"):
        lines += [f"- {n}" for n in card["feature_notes"]] + [""]
    lines += [
        "## Parameters",
        "",
        "```json",
        json.dumps(card["params"], indent=1, default=str),
        "```",
        "",
        "## Limitations",
        "",
    ]
    lines += [f"- {t}" for t in card.get("limitations", [])]
    return "\n".join(lines) + "\n"
