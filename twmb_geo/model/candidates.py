"""The model-candidate registry: the learned rankings the champion selection tries.

Every candidate is a named recipe that builds an unfitted estimator from the feature
columns of a unit type and the ``[model]`` settings (``[model] candidates`` lists the ones
tried; the baselines of the unit type are always candidates too). Built in:

``boost``
    The configured ``[model] kind`` (Poisson gradient boosting by default) on every panel
    feature.
``boost_small``
    The small-city regime: the same booster with few leaves, large leaves, a strong L2
    penalty, a slower learning rate and monotone (non-decreasing) constraints on the break
    history, rates and spatial lags, on a shorter list of stable features.
``glm``
    A Poisson GLM (L2 penalty) on log-scaled, standardised stable features: the most
    regularised learned ranking, often best with a few hundred units.
``pwe``
    The piecewise-exponential hazard GLM (``kind="pwe"``): a proportional-hazards model
    with a baseline hazard by age band and material, log diameter and previous breaks as
    levels, on every feature, with the unit's length as exposure (an offset) where capture
    is by length. The structured model of the pipe-break literature; it ranks pipes per km
    far better than the boosters on short pipe histories.

Adding one is a :func:`~twmb_geo.core.model_kinds.register_model_candidate` call for its
name and a :func:`register_candidate` call for its builder (``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sklearn.base import BaseEstimator

from ..config import ModelConfig
from ..core.model_kinds import MODEL_CANDIDATES, model_kind
from .estimators import make_estimator

__all__ = [
    "CANDIDATES",
    "DERIVED_FEATURES",
    "MONOTONE_FEATURES",
    "STABLE_FEATURES",
    "CandidateSpec",
    "UnitFeatures",
    "build_candidates",
    "register_candidate",
]

#: Rates added by :func:`twmb_geo.model.training.model_data`: features of the regularised
#: candidates only (on the bundled city's cells they lower the full booster's forward capture)
DERIVED_FEATURES: tuple[str, ...] = ("eb_rate", "eb_rate_last5", "smooth_last5")

#: Features of the regularised candidates (when present), on top of the unit type's own.
STABLE_FEATURES: tuple[str, ...] = (
    "breaks_last3",
    "breaks_last5",
    "breaks_last10",
    "breaks_to_date",
    "decayed",
    "years_since_last",
    "eb_rate",
    "eb_rate_last5",
    "smooth_last5",
    "rate_last5_per_km",
    "density_last5_per_km2",
    "lag1_breaks_last5_adj",
    "lag1_decayed_adj",
    "nbhd_rate_last5",
    "local_density",
    "exposure_km",
    "age_mean",
)
#: Features constrained non-decreasing in ``boost_small`` (more past breaks never lowers risk).
MONOTONE_FEATURES: frozenset[str] = frozenset(STABLE_FEATURES) - {
    "years_since_last",
    "exposure_km",
    "age_mean",
}


@dataclass(frozen=True)
class UnitFeatures:
    """What a candidate is built for: a unit type's feature columns and its exposure.

    Attributes
    ----------
    features : tuple of str
        Every model feature of the unit type.
    extra : tuple of str
        The unit type's own features (pipe attributes, cell shares), a subset of them.
    exposure : str or None
        The column expected counts are proportional to (length in km where capture is by
        length), or None (counts of units).
    """

    features: tuple[str, ...]
    extra: tuple[str, ...] = ()
    exposure: str | None = None


#: builds the estimator from the unit type's features and the settings; None when the
#: candidate does not apply
Builder = Callable[[UnitFeatures, ModelConfig], BaseEstimator | None]


@dataclass(frozen=True)
class CandidateSpec:
    """One learned candidate: its name (registered in ``core.model_kinds``) and builder."""

    name: str
    build: Builder

    @property
    def description(self) -> str:
        """The registered line for people."""
        return MODEL_CANDIDATES[self.name]


#: name -> candidate builder, in the order the card lists them
CANDIDATES: dict[str, CandidateSpec] = {}


def register_candidate(spec: CandidateSpec) -> CandidateSpec:
    """Add the builder of the registered candidate name ``spec.name``."""
    if spec.name not in MODEL_CANDIDATES:
        raise ValueError(
            f"candidate {spec.name!r} is not registered in twmb_geo.core.model_kinds "
            "(register_model_candidate first)"
        )
    if spec.name in CANDIDATES:
        raise ValueError(f"candidate {spec.name!r} already has a builder")
    CANDIDATES[spec.name] = spec
    return spec


def _stable(u: UnitFeatures) -> list[str]:
    have = set(u.features)
    out = [f for f in STABLE_FEATURES if f in have]
    return out + [f for f in u.extra if f in have and f not in out]


def _boost(u: UnitFeatures, mc: ModelConfig) -> BaseEstimator:
    return make_estimator(
        mc.kind,
        features=[f for f in u.features if f not in DERIVED_FEATURES],
        calibrate=False,
        random_state=mc.seed,
        learning_rate=mc.learning_rate,
        max_iter=mc.max_iter,
        **_rows(mc),
    )


def _rows(mc: ModelConfig) -> dict[str, int]:
    """``max_rows`` of count kinds (classifiers train on every row)."""
    return {"max_rows": mc.max_train_rows} if model_kind(mc.kind).task == "count" else {}


def _boost_small(u: UnitFeatures, mc: ModelConfig) -> BaseEstimator | None:
    if mc.kind not in ("poisson", "hgb"):
        return None
    feats = _stable(u)
    if not feats:
        return None
    cst = [1 if f in MONOTONE_FEATURES else 0 for f in feats]
    return make_estimator(
        mc.kind,
        features=feats,
        calibrate=False,
        random_state=mc.seed,
        learning_rate=0.05,
        max_iter=max(mc.max_iter, 100),
        max_leaf_nodes=5,
        min_samples_leaf=100,
        l2_regularization=10.0,
        hgb_params={"monotonic_cst": cst},
        **_rows(mc),
    )


def _glm(u: UnitFeatures, mc: ModelConfig) -> BaseEstimator | None:
    feats = _stable(u)
    if not feats:
        return None
    return make_estimator(
        "glm", features=feats, calibrate=False, alpha=1e-2, max_rows=mc.max_train_rows
    )


def _pwe(u: UnitFeatures, mc: ModelConfig) -> BaseEstimator | None:
    if not u.features:
        return None
    return make_estimator(
        "pwe",
        features=list(u.features),
        calibrate=False,
        alpha=1e-4,
        max_rows=mc.max_train_rows,
        exposure=u.exposure,
    )


register_candidate(CandidateSpec("boost", _boost))
register_candidate(CandidateSpec("boost_small", _boost_small))
register_candidate(CandidateSpec("glm", _glm))
register_candidate(CandidateSpec("pwe", _pwe))


def build_candidates(
    names: Sequence[str], unit: UnitFeatures, mc: ModelConfig
) -> dict[str, BaseEstimator]:
    """The unfitted estimators of the named candidates that apply (unknown names raise)."""
    out: dict[str, BaseEstimator] = {}
    for name in names:
        if name not in CANDIDATES:
            raise ValueError(f"unknown model candidate {name!r}; known: {list(CANDIDATES)}")
        est = CANDIDATES[name].build(unit, mc)
        if est is not None:
            out[name] = est
    return out
