"""Seeded randomness for the synthetic city: counter-based hashes and smooth random fields.

* :func:`hash_uniform` gives a uniform number for an integer key (lattice cell, line ...)
  without any sequential state, so a small city built in a window is exactly the same
  street pattern as that window of the full city.
* :class:`GridField` is a spatially autocorrelated standard-normal field on a fixed
  100 m grid over the Toronto footprint (white noise smoothed with a Gaussian kernel and
  standardised), sampled by bilinear interpolation. The soil-corrosivity field of the
  hazard model is one; others drive development age and open land.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

__all__ = ["GridField", "hash_uniform", "smooth_field"]

_G = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (wrapping uint64 arithmetic, element-wise)."""
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(30))
        h = h * _M1
        h = h ^ (h >> np.uint64(27))
        h = h * _M2
        return h ^ (h >> np.uint64(31))


def hash_uniform(seed: int, tag: int, *keys: np.ndarray | int) -> np.ndarray:
    """Uniform numbers in [0, 1) from integer keys (broadcast), reproducible across platforms.

    Parameters
    ----------
    seed
        The city seed.
    tag
        A constant per purpose, so different draws on the same key are independent.
    keys
        Integer arrays (or ints) identifying the object, e.g. lattice indices.
    """
    arrs = [np.asarray(k, dtype=np.int64) for k in keys]
    shape = np.broadcast_shapes(*(a.shape for a in arrs)) if arrs else ()
    start = np.array([(seed & 0xFFFFFFFF) * 1_000_003 + tag], dtype=np.int64).view(np.uint64)
    h = _mix(np.full(shape, (start * _G)[0], dtype=np.uint64))
    for a in arrs:
        h = _mix(
            h ^ (np.broadcast_to(a, shape).view(np.uint64) * _G + np.uint64(0x632BE59BD9B4E019))
        )
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


@dataclass(frozen=True)
class GridField:
    """A scalar field on a regular grid (EPSG:2952), interpolated bilinearly.

    Attributes
    ----------
    values
        Grid values, shape ``(ny, nx)``; row 0 is the southern row.
    x0, y0
        South-west corner of the grid (metres, EPSG:2952).
    cell
        Cell size in metres; value ``[i, j]`` belongs to the cell centre
        ``(x0 + (j + 0.5) * cell, y0 + (i + 0.5) * cell)``.
    name
        What the field is (e.g. ``"soil_corrosivity"``).
    """

    values: np.ndarray
    x0: float
    y0: float
    cell: float
    name: str = "field"

    def at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Field value at points (bilinear; constant beyond the grid edge)."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        rows = (y - self.y0) / self.cell - 0.5
        cols = (x - self.x0) / self.cell - 0.5
        return ndimage.map_coordinates(
            self.values, [rows.ravel(), cols.ravel()], order=1, mode="nearest"
        ).reshape(x.shape)

    def to_frame(self) -> pd.DataFrame:
        """One row per cell: centre ``x``, ``y`` (EPSG:2952) and the ``value``."""
        ny, nx = self.values.shape
        xs = self.x0 + (np.arange(nx) + 0.5) * self.cell
        ys = self.y0 + (np.arange(ny) + 0.5) * self.cell
        return pd.DataFrame(
            {
                "x": np.tile(xs, ny),
                "y": np.repeat(ys, nx),
                self.name: self.values.ravel().astype(np.float64),
            }
        )


def smooth_field(
    seed: int,
    tag: int,
    bounds: tuple[float, float, float, float],
    cell: float,
    length_scale_m: float,
    name: str,
) -> GridField:
    """A standard-normal field with Gaussian autocorrelation of about ``length_scale_m``.

    White noise on the grid is smoothed with a Gaussian kernel of standard deviation
    ``length_scale_m`` and standardised to mean 0 and standard deviation 1 over the grid.
    """
    x0, y0, x1, y1 = bounds
    nx = int(np.ceil((x1 - x0) / cell))
    ny = int(np.ceil((y1 - y0) / cell))
    rng = np.random.default_rng(np.random.SeedSequence([seed, tag]))
    noise = rng.standard_normal((ny, nx))
    f = ndimage.gaussian_filter(noise, sigma=length_scale_m / cell, mode="reflect")
    f = (f - f.mean()) / f.std()
    return GridField(values=f, x0=float(x0), y0=float(y0), cell=float(cell), name=name)
