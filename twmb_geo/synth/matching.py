"""A random network of short pipes with breaks near them, for the break-matching code.

Unlike :func:`~twmb_geo.synth.make_city` (a whole city with streets, a hazard model and
files in City formats), this gives the two tables
:func:`~twmb_geo.spatial.snapping.link_breaks_to_pipes` reads, at any size in seconds, with
every case its rules handle: breaks naming their pipe by asset id (some ids unknown, some
blank, some pipe ids duplicated), pipes without geometry, pipes installed after or removed
before a break, materials and diameters that agree or not, and breaks beyond the tolerance.
Used by the partitioning tests and ``benchmarks/scale.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

__all__ = ["matching_case", "street_case"]


def matching_case(
    n_pipes: int,
    n_breaks: int,
    *,
    seed: int = 0,
    centre: tuple[float, float] = (315_000.0, 4_840_000.0),
    density_per_km2: float = 30.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Breaks and pipes (analysis-CRS coordinates around ``centre``).

    Parameters
    ----------
    n_pipes, n_breaks
        Table sizes.
    seed
        Random seed (the same seed gives the same tables).
    centre
        Centre of the square network (default: central Toronto in MTM zone 10).
    density_per_km2
        Pipe start points per km²: the square grows with ``n_pipes``.

    Returns
    -------
    breaks, pipes
        ``break_id, x, y, year, asset_id, material, diameter_mm`` and ``pipe_id, geometry,
        install_year, removal_year, asset_id, material, diameter_mm``.
    """
    rng = np.random.default_rng(seed)
    half = 500.0 * np.sqrt(n_pipes / density_per_km2)
    x0, y0 = centre
    sx = x0 + rng.uniform(-half, half, n_pipes)
    sy = y0 + rng.uniform(-half, half, n_pipes)
    ang = rng.uniform(0, np.pi, n_pipes)
    length = rng.uniform(20, 400, n_pipes)
    ends = np.stack([sx + length * np.cos(ang), sy + length * np.sin(ang)], 1)
    lines = shapely.linestrings(np.stack([np.stack([sx, sy], 1), ends], 1))
    geoms = lines.astype(object)
    geoms[rng.random(n_pipes) < 0.03] = None
    install = rng.integers(1900, 2015, n_pipes).astype(float)
    install[rng.random(n_pipes) < 0.05] = np.nan
    removal = np.where(rng.random(n_pipes) < 0.1, install + rng.integers(5, 60, n_pipes), np.nan)
    wrap = max(1, n_pipes - 7)  # the last 7 pipes repeat the first asset ids
    asset = np.array([f"A{i % wrap}" for i in range(n_pipes)], dtype=object)
    pipes = pd.DataFrame(
        {
            "pipe_id": [f"p{i:08d}" for i in range(n_pipes)],
            "geometry": geoms,
            "install_year": install,
            "removal_year": removal,
            "asset_id": asset,
            "material": rng.choice(np.array(["CI", "DI", "PVC", None], dtype=object), n_pipes),
            "diameter_mm": rng.choice([150.0, 200.0, 300.0, np.nan], n_pipes),
        }
    )
    k = rng.integers(0, n_pipes, n_breaks)
    at = shapely.line_interpolate_point(lines[k], rng.uniform(0, 1, n_breaks), normalized=True)
    off = rng.normal(0, 12, (n_breaks, 2))
    ids = np.full(n_breaks, None, dtype=object)
    r = rng.random(n_breaks)
    ids[r < 0.2] = asset[k[r < 0.2]]
    ids[(r >= 0.2) & (r < 0.25)] = "UNKNOWN"
    ids[(r >= 0.25) & (r < 0.27)] = "  "
    breaks = pd.DataFrame(
        {
            "break_id": [f"b{i:08d}" for i in range(n_breaks)],
            "x": shapely.get_x(at) + off[:, 0],
            "y": shapely.get_y(at) + off[:, 1],
            "year": rng.integers(1990, 2017, n_breaks),
            "asset_id": ids,
            "material": rng.choice(np.array(["CI", "DI", None], dtype=object), n_breaks),
            "diameter_mm": rng.choice([150.0, 200.0, np.nan], n_breaks),
        }
    )
    return breaks, pipes


def street_case(
    pipes: pd.DataFrame, breaks: pd.DataFrame, *, seed: int = 0, long_km: float = 3.0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Street segments over the network of :func:`matching_case`, for the street links
    and the pipe-to-street apportionment.

    The segments run along the located pipes, shifted by up to 12 m (so a pipe overlaps
    the corridor of its own segment, and sometimes of others), plus a tenth more at
    random; 10 % are not streets (``is_street`` False); a twentieth repeat another
    segment's geometry under a new id (exact ties, decided by the lowest id). The pipes
    get their representative point (``x``, ``y``: the mid-point; none without geometry)
    and one in fifty is stretched to ``long_km`` (a pipe far longer than a partition).
    The breaks get a ``street_segment_id``: a real id for a fifth of them (any class), an
    unknown one for a twentieth, else none.

    Returns
    -------
    breaks, pipes, streets
        ``breaks`` and ``pipes`` with the new columns; ``streets``: ``segment_id``,
        ``is_street``, ``geometry``.
    """
    rng = np.random.default_rng(seed)
    geoms = pipes["geometry"].to_numpy(dtype=object).copy()
    has = np.flatnonzero(~shapely.is_missing(geoms))
    stretch = has[rng.random(len(has)) < 0.02]
    if len(stretch):
        a = shapely.get_coordinates(geoms[stretch].astype(object)).reshape(-1, 2, 2)
        d = a[:, 1] - a[:, 0]
        d *= (long_km * 1000.0 / np.hypot(d[:, 0], d[:, 1]))[:, None]
        geoms[stretch] = shapely.linestrings(np.stack([a[:, 0], a[:, 0] + d], 1))
    mid = shapely.line_interpolate_point(geoms[has].astype(object), 0.5, normalized=True)
    x = np.full(len(pipes), np.nan)
    y = np.full(len(pipes), np.nan)
    x[has], y[has] = shapely.get_x(mid), shapely.get_y(mid)
    p = pipes.assign(geometry=geoms, x=x, y=y)
    ends = shapely.get_coordinates(geoms[has].astype(object)).reshape(-1, 2, 2)
    shifted = ends + rng.uniform(-12, 12, (len(ends), 1, 2))
    pick = rng.integers(0, len(ends), max(1, len(ends) // 10))
    extra = ends[pick] + rng.normal(0, 200, (len(pick), 1, 2))
    coords = np.concatenate([shifted, extra])
    again = rng.choice(len(coords), max(1, len(coords) // 20), replace=False)
    lines = shapely.linestrings(np.concatenate([coords, coords[again]]))
    n = len(lines)
    order = rng.permutation(n)  # ids not in the order of the geometries
    streets = pd.DataFrame(
        {
            "segment_id": [f"s{i:07d}" for i in order],
            "is_street": rng.random(n) >= 0.1,
            "geometry": lines.astype(object),
        }
    )
    ids = np.full(len(breaks), None, dtype=object)
    r = rng.random(len(breaks))
    ids[r < 0.2] = streets["segment_id"].to_numpy(dtype=object)[rng.integers(0, n, len(breaks))][
        r < 0.2
    ]
    ids[(r >= 0.2) & (r < 0.25)] = "S-UNKNOWN"
    return breaks.assign(street_segment_id=ids), p, streets
