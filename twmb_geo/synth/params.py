"""Parameters of the synthetic city: size, seed, study window and every hazard coefficient.

All defaults are documented in ``docs/synthetic-city.md``. Per-material tables are tuples
of ``(code, value)`` pairs so the dataclass stays frozen and hashable; read them through
:meth:`SynthParams.table`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_N_PIPES", "MATERIAL_CODES", "SynthParams"]

#: the City's active inventory at the default size (about 49,414 published segments)
DEFAULT_N_PIPES = 49_000

#: true materials the generator draws (UNK and 'None' are only how a record is *published*)
MATERIAL_CODES: tuple[str, ...] = (
    "CI", "CICL", "DIP", "DICL", "PVC", "PVCO", "AC", "SP", "SPCL",
    "CPP", "PCPP", "CONC", "CONP", "COP", "PE", "HDPE",
)  # fmt: skip

#: breaks per km per year at age 50, 150 mm, soil 0, an average winter, no recent break
BASE_RATE: tuple[tuple[str, float], ...] = (
    ("CI", 0.30), ("CICL", 0.15), ("DIP", 0.22), ("DICL", 0.08), ("PVC", 0.05),
    ("PVCO", 0.04), ("AC", 0.15), ("SP", 0.12), ("SPCL", 0.06), ("CPP", 0.04),
    ("PCPP", 0.04), ("CONC", 0.05), ("CONP", 0.05), ("COP", 0.20), ("PE", 0.06),
    ("HDPE", 0.05),
)  # fmt: skip

#: exponential ageing rate per year: f(age) = exp(gamma * (min(age, age_cap) - age_ref))
AGE_RATE: tuple[tuple[str, float], ...] = (
    ("CI", 0.008), ("CICL", 0.008), ("DIP", 0.020), ("DICL", 0.020), ("PVC", 0.010),
    ("PVCO", 0.010), ("AC", 0.020), ("SP", 0.020), ("SPCL", 0.015), ("CPP", 0.015),
    ("PCPP", 0.015), ("CONC", 0.015), ("CONP", 0.015), ("COP", 0.020), ("PE", 0.010),
    ("HDPE", 0.010),
)  # fmt: skip

#: how strongly soil corrosivity acts on a material (kappa: 1 bare metal, 0 plastics)
SOIL_SUSCEPTIBILITY: tuple[tuple[str, float], ...] = (
    ("CI", 1.0), ("CICL", 0.6), ("DIP", 1.0), ("DICL", 0.6), ("PVC", 0.0), ("PVCO", 0.0),
    ("AC", 0.5), ("SP", 1.0), ("SPCL", 0.6), ("CPP", 0.5), ("PCPP", 0.5), ("CONC", 0.5),
    ("CONP", 0.5), ("COP", 0.8), ("PE", 0.0), ("HDPE", 0.0),
)  # fmt: skip

#: share of breaks per calendar month (Jan..Dec), from the real 1990-2016 Toronto file
MONTH_WEIGHTS: tuple[float, ...] = (
    0.2077, 0.1684, 0.0994, 0.0410, 0.0308, 0.0374,
    0.0421, 0.0467, 0.0522, 0.0587, 0.0790, 0.1367,
)  # fmt: skip


@dataclass(frozen=True)
class SynthParams:
    """Everything that defines a synthetic city; the same parameters give the same files.

    Attributes
    ----------
    seed
        Master seed of every random draw.
    n_pipes
        Active (in-service at ``snapshot_year``) pipe records; abandoned records come on
        top. 49,000 is Toronto's size and fills the whole service area; smaller cities are
        a window of it around ``window_centre_lonlat``; larger ones fill the same footprint
        with a denser (benchmark) network.
    start_year, end_year
        Study window of the break simulation (inclusive).
    snapshot_year
        Year of the inventory snapshot: pipes are installed up to this year, replacements
        up to this year retire their predecessor.
    window_centre_lonlat
        Centre of the window used for cities smaller than the default.
    gps_sigma_m, outlier_share, outlier_sigma_m
        Location noise of a reported break: isotropic Gaussian with ``gps_sigma_m`` per
        axis; a share ``outlier_share`` of breaks uses ``outlier_sigma_m`` instead.
    base_rate, age_rate, soil_susceptibility
        Per-material hazard tables, see ``docs/synthetic-city.md``.
    age_ref, age_cap
        Reference age (years) of ``base_rate`` and the age beyond which ageing stops.
    diameter_ref_mm, diameter_exponent
        ``g(d) = (d / diameter_ref_mm) ** -diameter_exponent``.
    soil_beta, soil_length_scale_m
        Soil effect ``exp(soil_beta * kappa * s)`` of the standard-normal corrosivity
        field ``s`` with correlation length ``soil_length_scale_m``.
    winter_coef, winter_fill, winter_fdd
        Winter factor ``exp(winter_coef * z)`` of the standardised freezing degree-days of
        the winter ending in the year; ``winter_fill`` ("mean" or "draw") decides years
        without temperature coverage; ``winter_fdd`` overrides the bundled weather with
        ``(year, fdd)`` pairs.
    repeat_alpha, repeat_window, repeat_cap
        Self-exciting factor ``1 + repeat_alpha * min(H, repeat_cap)`` where ``H`` counts
        this pipe's breaks in the previous ``repeat_window`` years.
    target_breaks_per_year
        Mean breaks per year at the default size (scaled by ``n_pipes / 49,000``); the
        calibration constant ``c`` of the hazard is solved to meet it. ``None`` keeps
        ``c = 1`` (the coefficients as stated).
    month_weights
        Share of breaks per calendar month.
    missing_year_share, unknown_material_share, none_material_share
        Published-record defects: construction year blank, material ``UNK``, material the
        string ``"None"`` (the true values stay in the truth tables).
    """

    seed: int = 42
    n_pipes: int = DEFAULT_N_PIPES
    start_year: int = 1990
    end_year: int = 2016
    snapshot_year: int = 2025
    window_centre_lonlat: tuple[float, float] = (-79.400, 43.700)
    gps_sigma_m: float = 3.0
    outlier_share: float = 0.02
    outlier_sigma_m: float = 50.0
    base_rate: tuple[tuple[str, float], ...] = BASE_RATE
    age_rate: tuple[tuple[str, float], ...] = AGE_RATE
    soil_susceptibility: tuple[tuple[str, float], ...] = SOIL_SUSCEPTIBILITY
    age_ref: float = 50.0
    age_cap: float = 100.0
    diameter_ref_mm: float = 150.0
    diameter_exponent: float = 0.6
    soil_beta: float = 0.4
    soil_length_scale_m: float = 1500.0
    winter_coef: float = 0.2
    winter_fill: str = "mean"
    winter_fdd: tuple[tuple[int, float], ...] | None = None
    repeat_alpha: float = 0.5
    repeat_window: int = 5
    repeat_cap: int = 3
    target_breaks_per_year: float | None = 1313.5
    month_weights: tuple[float, ...] = MONTH_WEIGHTS
    missing_year_share: float = 0.015
    unknown_material_share: float = 0.0168
    none_material_share: float = 0.0004

    def __post_init__(self) -> None:
        problems = []
        if not 100 <= self.n_pipes <= 20_000_000:
            problems.append(f"n_pipes must be within 100..20,000,000, got {self.n_pipes}")
        if self.end_year < self.start_year:
            problems.append("end_year must not be before start_year")
        if self.snapshot_year < self.end_year:
            problems.append("snapshot_year must not be before end_year")
        if self.winter_fill not in ("mean", "draw"):
            problems.append(f"winter_fill must be 'mean' or 'draw', got {self.winter_fill!r}")
        if len(self.month_weights) != 12 or min(self.month_weights) < 0:
            problems.append("month_weights needs 12 non-negative numbers")
        for name in ("base_rate", "age_rate", "soil_susceptibility"):
            missing = set(MATERIAL_CODES) - {k for k, _ in getattr(self, name)}
            if missing:
                problems.append(f"{name} lacks materials {sorted(missing)}")
        if self.repeat_window < 1:
            problems.append("repeat_window must be >= 1")
        if self.gps_sigma_m < 0 or self.outlier_sigma_m < 0:
            problems.append("noise standard deviations must be >= 0")
        if problems:
            raise ValueError("invalid SynthParams: " + "; ".join(problems))

    @property
    def years(self) -> range:
        """The simulated years."""
        return range(self.start_year, self.end_year + 1)

    @property
    def scale(self) -> float:
        """``n_pipes`` relative to the default (Toronto) size."""
        return self.n_pipes / DEFAULT_N_PIPES

    def table(self, name: str) -> dict[str, float]:
        """A per-material table (``base_rate``, ``age_rate``, ``soil_susceptibility``) as a dict."""
        return {k: float(v) for k, v in getattr(self, name)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tables as objects)."""
        d = dataclasses.asdict(self)
        for name in ("base_rate", "age_rate", "soil_susceptibility"):
            d[name] = self.table(name)
        d["winter_fdd"] = (
            None if self.winter_fdd is None else {str(y): v for y, v in self.winter_fdd}
        )
        d["window_centre_lonlat"] = list(self.window_centre_lonlat)
        d["month_weights"] = list(self.month_weights)
        return d
