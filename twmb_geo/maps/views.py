"""What the static maps draw of each layer, collected a block of features at a time.

The static maps (:mod:`~twmb_geo.maps.static`) need little of a layer besides its lines:
tiers, lengths, years and the layer's bounds. :class:`MapViews` keeps those and, for the
line layers (pipes, streets: the largest), writes each block's line parts in the analysis
CRS to an unnamed scratch file, from which the tier maps draw them back a block at a time
(:meth:`LineView.parts`). So the maps hold one block of lines at any moment, whatever the
size of the city, and draw the same pixels as from the whole layer: the parts come back in
layer order, a tier's parts drawn one after another either way.

Break points keep only their projected coordinates and year; cells and neighbourhoods (one
feature per H3 cell or area, not per pipe) are kept as slim projected frames.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pandas.api.types import union_categoricals

from ..core.crs import analysis_crs
from ..core.geometry import union_bounds
from ..core.vocab import UNSCORED

__all__ = ["MAP_COLUMNS", "LineView", "MapViews", "PointView", "map_view", "projected"]

#: the layer columns the static maps read (besides the geometry)
MAP_COLUMNS: Final[tuple[str, ...]] = (
    "tier",
    "percentile",
    "length_m",
    "hotspot_class",
    "year",
    "score_year",
    "model_version",
    "lisa_year",
)
#: the line layers, drawn from the scratch file
LINE_LAYERS: Final[tuple[str, ...]] = ("pipes", "streets")
#: the point layer of the density map
POINT_LAYER: Final[str] = "breaks"
#: the area layers, kept as projected frames
AREA_LAYERS: Final[tuple[str, ...]] = ("cells", "neighbourhoods")
#: what a line view keeps of each row
_LINE_COLUMNS: Final[tuple[str, ...]] = ("tier", "percentile", "length_m", "score_year")


def map_view(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The part of a layer the static maps read (:data:`MAP_COLUMNS` and the geometry)."""
    keep = [c for c in gdf.columns if c in MAP_COLUMNS]
    return gdf[[*keep, gdf.geometry.name]].copy()  # a copy: nothing of the layer is held


def projected(gdf: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
    """A layer in the analysis CRS without empty geometries, or None if nothing is left
    (a layer without CRS is taken to be in the analysis CRS)."""
    if gdf is None or gdf.empty:
        return None
    out = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)]
    if out.empty:
        return None
    crs = analysis_crs()
    return out.to_crs(crs) if out.crs is not None else out.set_crs(crs)


def _bounds(xy: np.ndarray) -> np.ndarray:
    return np.r_[xy.min(axis=0), xy.max(axis=0)]


def _widen(bounds: np.ndarray | None, more: np.ndarray) -> np.ndarray:
    if bounds is None:
        return more
    return union_bounds(bounds, more)


@dataclass
class _Block:
    """Where one block's parts are in the scratch file."""

    offset: int
    coords: int
    parts: int


@dataclass
class LineView:
    """A line layer as the tier maps draw it.

    ``attrs`` holds, per feature with a geometry, the tier (``unscored`` where missing),
    percentile, length and score year; ``bounds`` the layer's bounds in the analysis CRS;
    the line parts themselves are in a scratch file, read back by :meth:`parts` (only for a
    layer with tiers: no map draws the parts of a layer without scores).
    """

    file: IO[bytes]
    blocks: list[_Block] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    bounds: np.ndarray | None = None
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _attrs: list[pd.DataFrame] = field(default_factory=list)

    def add(self, block: gpd.GeoDataFrame) -> None:
        """Keep a block's rows: their attributes here, their parts in the file."""
        lines = projected(block)
        if lines is None:
            return
        tier = lines["tier"].fillna(UNSCORED).astype(str) if "tier" in lines else None
        keep = {c: lines[c].array for c in _LINE_COLUMNS[1:] if c in lines}
        attrs = pd.DataFrame(keep, index=pd.RangeIndex(len(lines)))
        if tier is not None:
            attrs.insert(0, "tier", pd.Categorical(tier.to_numpy()))
        self._attrs.append(attrs)
        self.bounds = _widen(self.bounds, np.asarray(lines.total_bounds, dtype=float))
        if tier is None:  # no scores: no tier map draws this layer's parts
            return
        local, labels = pd.factorize(tier)
        known = [self.codes.setdefault(str(t), len(self.codes)) for t in labels]
        codes = np.asarray(known, dtype=np.int32)[local]
        parts, owner = shapely.get_parts(lines.geometry.to_numpy(), return_index=True)
        coords, at = shapely.get_coordinates(parts, return_index=True)
        if not len(coords):
            return
        starts = np.r_[0, np.flatnonzero(np.diff(at)) + 1]
        sizes = np.diff(np.r_[starts, len(coords)]).astype(np.int64)
        part_codes = codes[owner[at[starts]]]
        counts = np.bincount(part_codes, minlength=len(self.codes))
        self.counts = np.r_[self.counts, np.zeros(len(counts) - len(self.counts), np.int64)]
        self.counts += counts
        self.file.seek(0, 2)
        offset = self.file.tell()
        for array in (np.ascontiguousarray(coords, dtype=np.float64), sizes, part_codes):
            self.file.write(array.tobytes())
        self.blocks.append(_Block(offset, len(coords), len(sizes)))

    @property
    def attrs(self) -> pd.DataFrame:
        """Every kept row's attributes, in layer order (one frame, made once)."""
        if len(self._attrs) != 1:
            frames = self._attrs or [pd.DataFrame({"tier": pd.Categorical([])})]
            tiers = union_categoricals([f["tier"] for f in frames]) if "tier" in frames[0] else None
            joined = pd.concat([f.drop(columns="tier", errors="ignore") for f in frames],
                               ignore_index=True)  # fmt: skip
            if tiers is not None:
                joined.insert(0, "tier", tiers)
            self._attrs = [joined]
        return self._attrs[0]

    def _read(self, block: _Block) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.file.seek(block.offset)
        coords = np.frombuffer(self.file.read(block.coords * 16), np.float64).reshape(-1, 2)
        sizes = np.frombuffer(self.file.read(block.parts * 8), np.int64)
        codes = np.frombuffer(self.file.read(block.parts * 4), np.int32)
        return coords, sizes, codes

    def part_count(self, tier: str) -> int:
        """How many line parts carry ``tier``."""
        code = self.codes.get(tier)
        return 0 if code is None else int(self.counts[code])

    def parts(self, tier: str) -> Iterator[list[np.ndarray]]:
        """The vertex arrays of the parts of ``tier``'s lines, in layer order, a block at a
        time."""
        code = self.codes.get(tier)
        if code is None:
            return
        for block in self.blocks:
            coords, sizes, codes = self._read(block)
            chosen = codes == code
            if chosen.any():
                ends = np.cumsum(sizes)
                starts = (ends - sizes)[chosen].tolist()
                yield [coords[a:b] for a, b in zip(starts, ends[chosen].tolist(), strict=True)]


@dataclass
class PointView:
    """A point layer as the density map draws it: coordinates in the analysis CRS and the
    year of each point with a geometry."""

    _xy: list[np.ndarray] = field(default_factory=list)
    _years: list[np.ndarray] = field(default_factory=list)
    has_year: bool = False

    def add(self, block: gpd.GeoDataFrame) -> None:
        points = projected(block)
        if points is None:
            return
        self._xy.append(shapely.get_coordinates(points.geometry.to_numpy()))
        self.has_year = self.has_year or "year" in points
        if "year" in points:
            self._years.append(pd.to_numeric(points["year"], errors="coerce").to_numpy(float))
        else:
            self._years.append(np.full(len(points), np.nan))

    @property
    def xy(self) -> np.ndarray:
        if len(self._xy) != 1:
            self._xy = [np.concatenate(self._xy) if self._xy else np.empty((0, 2))]
        return self._xy[0]

    @property
    def years(self) -> pd.Series | None:
        """The points' years (NaN where missing), or None when the layer has no year."""
        if not self.has_year:
            return None
        if len(self._years) != 1:
            self._years = [np.concatenate(self._years)]
        return pd.Series(self._years[0])

    @property
    def bounds(self) -> np.ndarray:
        return _bounds(self.xy)


class MapViews:
    """What the static maps read of every layer, added a block at a time (:meth:`add`).

    Used as a context manager (the line parts' scratch file is closed on exit; it has no
    name, so nothing is left behind even if the process is killed). ``scratch`` is the
    folder of that file (default: the system's temporary folder).
    """

    def __init__(self, scratch: Path | str | None = None) -> None:
        self._scratch = scratch
        self._files: list[IO[bytes]] = []
        self._lines: dict[str, LineView] = {}
        self._points = PointView()
        self._areas: dict[str, list[gpd.GeoDataFrame]] = {}

    @classmethod
    def of(
        cls,
        layers: Mapping[str, gpd.GeoDataFrame],
        *,
        block_rows: int | None = None,
        scratch: Path | str | None = None,
    ) -> MapViews:
        """The views of whole layers, added ``block_rows`` features at a time (all at once
        without it)."""
        views = cls(scratch)
        for name, gdf in layers.items():
            step = block_rows or max(len(gdf), 1)
            for start in range(0, max(len(gdf), 1), step):
                views.add(name, gdf.iloc[start : start + step])
        return views

    def __enter__(self) -> MapViews:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for file in self._files:
            file.close()
        self._files.clear()

    def add(self, name: str, block: gpd.GeoDataFrame) -> None:
        """Keep what the maps read of a block of layer ``name`` (other layers are ignored)."""
        if name in LINE_LAYERS:
            if name not in self._lines:
                if self._scratch is not None:
                    Path(self._scratch).mkdir(parents=True, exist_ok=True)
                file = tempfile.TemporaryFile(dir=self._scratch)  # noqa: SIM115 - closed by close()
                self._files.append(file)
                self._lines[name] = LineView(file)
            self._lines[name].add(block)
        elif name == POINT_LAYER:
            self._points.add(block)
        elif name in AREA_LAYERS:
            view = projected(map_view(block)) if not block.empty else None
            if view is not None:
                self._areas.setdefault(name, []).append(view)

    def lines(self, name: str) -> LineView | None:
        """The line layer ``name``, or None when it has no line with a geometry."""
        view = self._lines.get(name)
        return view if view is not None and view.bounds is not None else None

    def points(self) -> PointView | None:
        """The break points, or None when there is none with a geometry."""
        return self._points if self._points.xy.size else None

    def areas(self, name: str) -> gpd.GeoDataFrame | None:
        """The area layer ``name`` in the analysis CRS, or None when it has no geometry."""
        frames = self._areas.get(name)
        if not frames:
            return None
        if len(frames) > 1:
            self._areas[name] = frames = [pd.concat(frames, ignore_index=True)]
        return frames[0]
