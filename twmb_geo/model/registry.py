"""The model registry on disk: ``<out>/models/<version>/`` with the model and its card.

Each trained model is a folder holding ``model.skops`` (the fitted
:class:`~twmb_geo.model.champion.ChampionModel`: a learned candidate, a baseline or a
blend, chosen by nested forward validation, in the :mod:`skops.io` format), ``card.json``
(everything needed to judge it: data hashes, training window, features, parameters, every
validation scheme's metrics, baselines, importance, limitations, and the sha256 of
``model.skops``) and ``card.md`` (the same for people). The store's ``models`` table
indexes the folders.

Loading a model never runs code from the folder (docs/model.md, "Trust model"):

1. only ``model.skops`` is read; a ``model.joblib`` of older versions (a pickle, which can
   run any code when loaded) is refused and never opened;
2. the sha256 of its bytes must equal the one ``card.json`` records;
3. every type the file names must be one skops trusts by default (NumPy, SciPy and
   scikit-learn's public estimators) or one of :data:`TRUSTED_TYPES` (exact names, no
   prefixes): checked with :func:`skops.io.get_untrusted_types` before any object is built,
   and again by :func:`skops.io.loads` itself;
4. the histogram-boosting trees are checked (node and feature indices in range, no
   categorical split) before the model can predict: scikit-learn indexes them without
   bounds checks.

:func:`save_model` runs the same checks on what it writes, so a model that could not be
loaded is refused when it is trained, not when it is scored.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import (
    BaseHistGradientBoosting,
)
from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

from ..core.files import atomic_write
from ..errors import InputDataError, TwmbError
from .champion import ChampionModel

__all__ = [
    "ARTEFACT",
    "LEGACY_ARTEFACT",
    "TRUSTED_TYPES",
    "load_card",
    "load_model",
    "register_trusted_type",
    "render_card",
    "save_model",
]

#: file name of the fitted model in a model folder
ARTEFACT = "model.skops"
#: the pickle earlier versions of twmb_geo wrote: refused, never opened
LEGACY_ARTEFACT = "model.joblib"
_CARD_FILES = ("card.json", "card.md")
_RETRAIN = "retrain with `twmb train` (it writes a new model.skops and card)"

#: Types a twmb_geo model holds beyond those skops trusts by default, by exact name: the
#: package's estimators, baselines and helpers, three scikit-learn internals (the boosting
#: trees, the calibrated-classifier wrapper and its folds) and the optional LightGBM
#: learner. Found by dumping a fitted model of every kind, baseline and blend; nothing
#: else loads. A custom learner's classes are added with :func:`register_trusted_type`.
TRUSTED_TYPES: set[str] = {
    "twmb_geo.model._arrays.signed_log1p",
    "twmb_geo.model.baselines.AgeBaseline",
    "twmb_geo.model.baselines.EmpiricalBayesRateBaseline",
    "twmb_geo.model.baselines.MaterialDecadeBaseline",
    "twmb_geo.model.baselines.PastBreaksBaseline",
    "twmb_geo.model.champion.ChampionModel",
    "twmb_geo.model.champion.Ecdf",
    "twmb_geo.model.champion.RateCalibrator",
    "twmb_geo.model.estimators.BreakCountRegressor",
    "twmb_geo.model.estimators.BreakRiskClassifier",
    "twmb_geo.model.estimators._BoostedClassifier",
    "twmb_geo.model.estimators._Booster",
    "twmb_geo.model.estimators._MedianImputer",
    "twmb_geo.model.hazard_design.HazardDesign",
    # its nodes are checked after loading (_tree_problem_of): skops leaves it out of its
    # defaults because scikit-learn indexes them without bounds checks
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.model_selection._split.KFold",
    # kind = "lightgbm" (optional package): the booster is LightGBM's own text model format
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMRegressor",
}


def register_trusted_type(name: str) -> None:
    """Trust the type ``name`` (fully qualified, e.g. ``"mypkg.learners.MyLearner"``) in
    model artefacts: the classes of a custom learner (``register_learner``).

    Trust is widened by code, never by a file: a name a model file brings is refused unless
    registered here.
    """
    parts = name.split(".")
    if len(parts) < 2 or not all(p.isidentifier() for p in parts):
        raise ValueError(f"not a fully qualified type name: {name!r}")
    TRUSTED_TYPES.add(name)


def _reproducible_zip(data: bytes) -> bytes:
    """The same skops file with reproducible bytes: the same model gives the same bytes (and
    sha256 in the card) in any process, at any time.

    skops names objects by their memory address (``__id__`` and the ``<id>.npy`` array
    members) and zips with the current time; the addresses are renumbered 1, 2, ... in
    the order of the schema (references between nodes keep pointing at the same node), the
    members are written in order with a fixed time.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        members = {n: src.read(n) for n in src.namelist()}
    schema = json.loads(members.pop("schema.json"))
    ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for k, v in node.items():
                if k == "__id__" and isinstance(v, int):
                    out[k] = ids.setdefault(v, len(ids) + 1)
                elif k == "file" and isinstance(v, str) and v in members:
                    out[k] = files.setdefault(v, f"{len(files) + 1}.npy")
                else:
                    out[k] = walk(v)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    schema = walk(schema)
    renamed = {files.get(n, n): b for n, b in members.items()}
    renamed["schema.json"] = json.dumps(schema, indent=2).encode("utf-8")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(renamed):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, renamed[name])
    return out.getvalue()


def save_model(root: Path, version: str, model: ChampionModel, card: dict[str, Any]) -> Path:
    """Write ``model.skops``, ``card.json`` and ``card.md`` under ``root/version``.

    Parameters
    ----------
    root : Path
        The registry folder (``<out>/models``).
    version : str
        The model version (the folder name).
    model : ChampionModel
        The fitted model.
    card : dict
        The model card; written with an ``artefact`` block (file, format, sha256, bytes).

    Returns
    -------
    Path
        The model folder.

    Raises
    ------
    TwmbError
        The model holds a type outside :data:`TRUSTED_TYPES` or a tree that could not be
        loaded back (nothing is written).
    """
    import skops
    import skops.io as sio  # imported when used: it imports every scikit-learn estimator

    folder = Path(root) / version
    path = folder / ARTEFACT
    data = _reproducible_zip(sio.dumps(model, compression=zipfile.ZIP_DEFLATED))
    bad = _untrusted(data, path)
    if bad:
        raise TwmbError(
            f"model {version!r} holds types twmb_geo does not trust in {ARTEFACT}: {bad}; "
            "a custom learner's classes must be registered with "
            "twmb_geo.model.registry.register_trusted_type"
        )
    problem = _tree_problem_of(model)
    if problem:
        raise TwmbError(
            f"model {version!r} holds {problem}: {ARTEFACT} would be refused when loaded, so "
            "it is not written (twmb_geo's boosted models use no categorical feature)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data, mode=None)
    # retraining into a folder of an older version replaces its pickle
    (folder / LEGACY_ARTEFACT).unlink(missing_ok=True)
    card = {
        **card,
        "artefact": {
            "file": ARTEFACT,
            "format": f"skops {skops.__version__}",
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        },
    }
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
    missing = [f for f in _CARD_FILES if not (folder / f).is_file()]
    if missing:
        raise InputDataError(
            f"model {version!r} is incomplete or absent in {root} (missing {missing}); "
            "list models with `twmb models list` or train one with `twmb train`"
        )
    return folder


def _untrusted(data: bytes, path: Path) -> list[str]:
    """The types named in the skops bytes ``data`` that are not trusted (none are built)."""
    import skops.io as sio

    try:
        found = sio.get_untrusted_types(data=data)
    except Exception as exc:  # noqa: BLE001 - skops raises several types for a damaged file
        raise InputDataError(
            f"{path} is not a readable skops model file ({type(exc).__name__}: {exc}); {_RETRAIN}"
        ) from None
    return sorted(set(found) - TRUSTED_TYPES)


def _walk(obj: Any, seen: set[int]) -> Iterator[Any]:
    """``obj`` and every object reachable through containers and instance attributes."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    yield obj
    if isinstance(obj, dict):
        children: Any = obj.values()
    elif isinstance(obj, list | tuple):
        children = obj
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        children = vars(obj).values()
    else:
        return
    for child in children:
        yield from _walk(child, seen)


def _tree_problem(tree: Any, n_features: int) -> str | None:
    """Why a boosting tree is unsafe to predict with, or ``None``.

    Prediction follows ``left``/``right`` from node 0 and reads ``feature_idx`` of the input
    row without bounds checks: every split node must point to later nodes of the same tree
    (so every walk ends on a leaf) and to a feature of the model. Categorical splits (never
    used by twmb_geo) would index further arrays and are refused.
    """
    if not isinstance(tree, TreePredictor):
        return f"a {type(tree).__name__} where a tree was expected"
    nodes = getattr(tree, "nodes", None)
    if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE:
        return "tree nodes of an unexpected type"
    if nodes.ndim != 1 or len(nodes) == 0:
        return "a tree without nodes"
    split = nodes["is_leaf"] == 0
    idx = np.arange(len(nodes))[split]
    for side in ("left", "right"):
        child = nodes[side][split].astype(np.int64)
        if np.any(child <= idx) or np.any(child >= len(nodes)):
            return f"a tree node whose {side} child is out of range"
    feat = nodes["feature_idx"][split]
    if np.any(feat < 0) or np.any(feat >= n_features):
        return "a tree split on a feature the model does not have"
    if np.any(nodes["is_categorical"] != 0):
        return "a categorical tree split"
    return None


def _tree_problem_of(model: Any) -> str | None:
    """Why the histogram-boosting trees of ``model`` are unsafe to predict with, or ``None``."""
    for obj in _walk(model, set()):
        if not isinstance(obj, BaseHistGradientBoosting):
            continue
        cats = getattr(getattr(obj, "_bin_mapper", None), "is_categorical_", None)
        if cats is not None and np.any(cats):
            return "a categorical feature in a boosted model"
        n_features = int(getattr(obj, "n_features_in_", 0))
        for trees in getattr(obj, "_predictors", []):
            for tree in trees if isinstance(trees, list) else [trees]:
                problem = _tree_problem(tree, n_features)
                if problem:
                    return problem
    return None


def load_model(root: Path, version: str) -> ChampionModel:
    """The fitted champion of ``version``, loaded without running code from the folder.

    Parameters
    ----------
    root : Path
        The registry folder (``<out>/models``).
    version : str
        The model version.

    Returns
    -------
    ChampionModel

    Raises
    ------
    InputDataError
        The folder has only a legacy ``model.joblib`` (never opened), ``model.skops`` is
        missing, its sha256 differs from the card's, it names a type outside the trusted
        ones or holds an unsafe tree; each message names the file and says to retrain.
    """
    folder = _folder(root, version)
    path = folder / ARTEFACT
    if not path.is_file():
        if (folder / LEGACY_ARTEFACT).is_file():
            raise InputDataError(
                f"{folder / LEGACY_ARTEFACT} is a pickle written by an older twmb_geo: loading "
                f"a pickle can run any code, so it is not opened; {_RETRAIN}, then delete "
                f"{LEGACY_ARTEFACT}"
            )
        raise InputDataError(f"model {version!r} in {root} has no {ARTEFACT}; {_RETRAIN}")
    block = load_card(root, version).get("artefact")
    expected = block.get("sha256") if isinstance(block, dict) else None
    if not isinstance(expected, str) or not expected:
        raise InputDataError(
            f"{folder / 'card.json'} records no sha256 of {ARTEFACT}, so {path} cannot be "
            f"checked and is not loaded; {_RETRAIN}"
        )
    # hash and parse the same bytes: the file cannot change between check and load
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected.lower():
        raise InputDataError(
            f"{path} has sha256 {actual} but {folder / 'card.json'} records {expected}: the "
            f"file changed after training and is not loaded; {_RETRAIN}"
        )
    bad = _untrusted(data, path)
    if bad:
        raise InputDataError(
            f"{path} names types twmb_geo does not trust: {bad}; it is not loaded (no object "
            f"was built); {_RETRAIN}"
        )
    import skops.io as sio

    try:
        model = sio.loads(data, trusted=sorted(TRUSTED_TYPES))
    except Exception as exc:  # noqa: BLE001 - skops raises several types for a damaged file
        raise InputDataError(
            f"{path} cannot be loaded ({type(exc).__name__}: {exc}); {_RETRAIN}"
        ) from None
    if not isinstance(model, ChampionModel):
        raise InputDataError(f"{path} is not a twmb_geo model; {_RETRAIN}")
    problem = _tree_problem_of(model)
    if problem:
        raise InputDataError(f"{path} holds {problem}, which twmb never writes; {_RETRAIN}")
    return model


def load_card(root: Path, version: str) -> dict[str, Any]:
    """The card of ``version`` as a dict (also of a folder with a legacy ``model.joblib``)."""
    path = _folder(root, version) / "card.json"
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputDataError(f"{path} is not valid JSON ({exc}); {_RETRAIN}") from None
    if not isinstance(card, dict):
        raise InputDataError(f"{path} is not a model card (a JSON object); {_RETRAIN}")
    return card


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


def _artefact_md(block: Any) -> str:
    """The card line of the model file: name, format and sha256."""
    if not isinstance(block, dict):
        return "– (no artefact record: retrain with `twmb train`)"
    return f"`{block.get('file')}` ({block.get('format')}), sha256 `{block.get('sha256')}`"


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
        f"(features of {card['scoring']['feature_year']})  ",
        f"- **Artefact:** {_artefact_md(card.get('artefact'))}",
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
