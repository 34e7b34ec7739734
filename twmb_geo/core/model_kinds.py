"""The model-kind registry: the names ``[model] kind`` accepts and what each one predicts.

A kind is a name and a task: ``"count"`` kinds are fitted by
:class:`~twmb_geo.model.estimators.BreakCountRegressor` (expected breaks), ``"probability"``
kinds by :class:`~twmb_geo.model.estimators.BreakRiskClassifier` (probability of a break).
The learner behind each kind is registered in :mod:`twmb_geo.model.estimators` under the
same name. Adding a model kind is a :func:`register_model_kind` call and its learner
factory (``docs/architecture.md``, "Adding a model kind").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "MODEL_CANDIDATES",
    "MODEL_KINDS",
    "ModelKind",
    "model_kind",
    "register_model_candidate",
    "register_model_kind",
]

Task = Literal["count", "probability"]


@dataclass(frozen=True)
class ModelKind:
    """One model kind: its name, what it predicts and a line for people."""

    name: str
    task: Task
    description: str


#: name -> kind, in the order the docs and the CLI list them
MODEL_KINDS: dict[str, ModelKind] = {}


def register_model_kind(kind: ModelKind) -> ModelKind:
    """Add ``kind`` to the registry (a name can be registered once)."""
    if kind.name in MODEL_KINDS:
        raise ValueError(f"model kind {kind.name!r} is already registered")
    if kind.task not in ("count", "probability"):
        raise ValueError(f"model kind {kind.name!r}: task must be 'count' or 'probability'")
    MODEL_KINDS[kind.name] = kind
    return kind


def model_kind(name: str) -> ModelKind:
    """The kind called ``name``; a ValueError lists the known ones."""
    try:
        return MODEL_KINDS[name]
    except KeyError:
        raise ValueError(f"kind must be one of {list(MODEL_KINDS)}, got {name!r}") from None


register_model_kind(
    ModelKind("poisson", "count", "histogram gradient boosting with a Poisson loss")
)
register_model_kind(
    ModelKind("hgb", "probability", "histogram gradient boosting classifier, balanced classes")
)
register_model_kind(
    ModelKind("logistic", "probability", "logistic regression on log-scaled features")
)
register_model_kind(
    ModelKind("lightgbm", "count", "LightGBM with a Poisson objective (optional package)")
)
register_model_kind(
    ModelKind("glm", "count", "Poisson GLM on log-scaled, standardised features (L2 penalty)")
)
register_model_kind(
    ModelKind(
        "pwe",
        "count",
        "piecewise-exponential Poisson GLM: proportional hazards with age bands by material",
    )
)

#: name -> description of the learned candidates the champion selection may try
#: (``[model] candidates``); their builders live in :mod:`twmb_geo.model.candidates`
MODEL_CANDIDATES: dict[str, str] = {}


def register_model_candidate(name: str, description: str) -> None:
    """Add a candidate name to the registry (a name can be registered once)."""
    if name in MODEL_CANDIDATES:
        raise ValueError(f"model candidate {name!r} is already registered")
    MODEL_CANDIDATES[name] = description


register_model_candidate("boost", "the configured model kind on every feature")
register_model_candidate(
    "boost_small", "regularised boosting (5 leaves, L2 10, monotone history) on stable features"
)
register_model_candidate("glm", "Poisson GLM (L2) on log-scaled stable features")
register_model_candidate(
    "pwe", "piecewise-exponential hazard GLM (age bands by material, offset log length)"
)
