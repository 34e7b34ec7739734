"""The offline HTML map: projection helpers, the written file, and a headless Chromium check.

The browser tests need Debian's Chromium (``make test`` installs it); without it they fail.
"""

from __future__ import annotations

import itertools
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer

from twmb_geo.config import default_config
from twmb_geo.maps.interactive import (
    OSM_TILE_URL,
    HtmlSubset,
    dequantise,
    from_web_mercator,
    html_map,
    html_subset,
    quantise,
    to_web_mercator,
    write_html_map,
)
from twmb_geo.maps.layers import map_layers
from twmb_geo.store.duckdb_store import Store

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
    "--virtual-time-budget=5000",
    # no name resolves: any request the page made would fail and be logged
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr",
    "--v=0",
)
BACKGROUND = (0xDD, 0xE3, 0xEA)  # the page background (map.css)
BREAK_YEARS = 5  # write_html_map's default


# -- helpers -----------------------------------------------------------------------------------


def _chromium() -> str:
    """The Chromium binary; a missing browser fails the test (``make test`` installs it)."""
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if found is None:
        pytest.fail(
            "Chromium is not installed: `make test` installs it (Debian package `chromium`)"
        )
    return found


def _run_chromium(page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on a local file with a fresh profile."""
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert res.returncode == 0, f"chromium failed ({res.returncode}):\n{res.stderr[-3000:]}"
    return res


def _body(dom: str) -> dict[str, str]:
    """The ``data-*`` attributes of the dumped page's ``<body>``."""
    tag = re.search(r"<body\b[^>]*>", dom)
    assert tag is not None, dom[:500]
    return dict(re.findall(r'data-([a-z]+)="([^"]*)"', tag.group(0)))


def _console_lines(stderr: str) -> list[str]:
    """Console messages of the page (Chromium logs them as ``...:CONSOLE(...)]``/``CONSOLE:``)."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line]


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _read_png(path: Path) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG to an (h, w, channels) uint8 array.

    PNG filters depend on the left, upper and upper-left pixels, so the pixels are
    reconstructed one anti-diagonal at a time (each needs only the two before it).
    """
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(raw):
        size, kind = struct.unpack(">I4s", raw[pos : pos + 8])
        body = raw[pos + 8 : pos + 8 + size]
        pos += 12 + size
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    assert header is not None
    w, h, depth, colour, _, _, interlace = header
    assert depth == 8 and interlace == 0 and colour in (2, 6), header
    ch = 3 if colour == 2 else 4
    rows = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(h, 1 + w * ch)
    filt = rows[:, 0].astype(np.int32)
    data = rows[:, 1:].reshape(h, w, ch).astype(np.int32)
    out = np.zeros((h + 1, w + 1, ch), np.int32)  # one row and column of zeros in front
    all_y = np.arange(h)
    for t in range(h + w - 1):
        y = all_y[max(0, t - w + 1) : min(h, t + 1)]
        x = t - y
        a, b, c = out[y + 1, x], out[y, x + 1], out[y, x]  # left, up, up-left
        f = filt[y][:, None]
        pred = np.select([f == 0, f == 1, f == 2, f == 3], [0, a, b, (a + b) // 2], _paeth(a, b, c))
        out[y + 1, x + 1] = (data[y, x] + pred) & 255
    return out[1:, 1:].astype(np.uint8)


def _write_png(path: Path, img: np.ndarray, filters: np.ndarray) -> None:
    """Encode an (h, w, 3) uint8 image with the given filter type per row (for the decoder test)."""
    h, w, ch = img.shape
    px = np.zeros((h + 1, w + 1, ch), np.int32)
    px[1:, 1:] = img
    a, b, c, x = px[1:, :-1], px[:-1, 1:], px[:-1, :-1], px[1:, 1:]
    preds = [np.zeros_like(x), a, b, (a + b) // 2, _paeth(a, b, c)]
    f = filters[:, None, None]
    pred = np.select([f == k for k in range(4)], preds[:4], preds[4])
    rows = np.concatenate([filters[:, None], ((x - pred) & 255).reshape(h, w * ch)], axis=1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(rows.astype(np.uint8).tobytes())
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def _expected_drawn(layers: dict[str, gpd.GeoDataFrame]) -> int:
    """Features drawn at load: every non-empty unit shape, breaks of the last years."""
    total = 0
    for name in ("neighbourhoods", "cells", "streets", "pipes"):
        if name in layers:
            geoms = layers[name].geometry
            total += int((geoms.notna() & ~geoms.is_empty).sum())
    if "breaks" in layers:
        br = layers["breaks"]
        last = int(br["year"].max())
        total += int(((br["year"] > last - BREAK_YEARS) & br.geometry.notna()).sum())
    return total


# -- projection and quantisation ---------------------------------------------------------------


def test_web_mercator_matches_pyproj() -> None:
    lon = np.array([-79.64, -79.38, -79.11, 0.0, 179.9, -179.9])
    lat = np.array([43.58, 43.70, 43.86, 0.0, 80.0, -80.0])
    x, y = to_web_mercator(lon, lat)
    px, py = Transformer.from_crs(4326, 3857, always_xy=True).transform(lon, lat)
    np.testing.assert_allclose(x, px, atol=1e-6)
    np.testing.assert_allclose(y, py, atol=1e-6)
    back_lon, back_lat = from_web_mercator(x, y)
    np.testing.assert_allclose(back_lon, lon, atol=1e-9)
    np.testing.assert_allclose(back_lat, lat, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    lon=st.floats(-180, 180),
    lat=st.floats(-85, 85),
    resolution=st.sampled_from([0.01, 0.1, 0.5, 1.0, 2.5, 10.0, 100.0]),
    shift=st.floats(0, 5e4),
)
def test_quantise_roundtrip_within_half_a_step(
    lon: float, lat: float, resolution: float, shift: float
) -> None:
    x, y = to_web_mercator(lon, lat)
    for value in (float(x), float(y)):
        origin = np.floor((value - shift) / resolution) * resolution
        steps = quantise(value, origin, resolution)
        assert steps.dtype == np.int64 and steps >= 0
        back = dequantise(steps, origin, resolution)
        assert abs(back - value) <= resolution / 2 + 1e-6


def test_quantise_refuses_a_bad_resolution() -> None:
    with pytest.raises(ValueError, match="resolution"):
        quantise([1.0], 0.0, 0.0)


def test_png_decoder_roundtrip(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, size=(23, 31, 3), dtype=np.uint8)
    img[5:15, 3:20] = (10, 200, 30)  # flat areas as well as noise
    path = tmp_path / "t.png"
    _write_png(path, img, np.arange(23) % 5)
    np.testing.assert_array_equal(_read_png(path), img)


# -- the file (no browser) ---------------------------------------------------------------------


def _small_layers() -> dict[str, gpd.GeoDataFrame]:
    """Hand-made layers with hostile labels: two cells, a pipe and three breaks."""
    hexes = [shapely.Point(-79.40 + 0.01 * i, 43.70).buffer(0.004, 3) for i in range(2)]
    cells = gpd.GeoDataFrame(
        {
            "label": ["</script><script>alert(1)</script>", "Cell & <b>two</b>"],
            "tier": ["very_high", "low"],
            "risk_score": [0.5, 0.01],
            "expected_breaks": [0.5, 0.01],
            "hotspot_class": ["persistent hot spot", "never significant"],
        },
        geometry=hexes,
        crs="EPSG:4326",
    )
    pipes = gpd.GeoDataFrame(
        {"label": ["Pipe 1 (300 mm Cast Iron)"], "tier": ["high"]},
        geometry=[shapely.LineString([(-79.405, 43.695), (-79.385, 43.705)])],
        crs="EPSG:4326",
    )
    breaks = gpd.GeoDataFrame(
        {
            "break_id": ["B1", "B2", "B3"],
            "date": ["2016-01-02", "2015-02-03", "1999-03-04"],
            "year": [2016, 2015, 1999],
            "material": ["CI", None, "DI"],
        },
        geometry=shapely.points([(-79.40, 43.70), (-79.39, 43.70), (-79.395, 43.701)]),
        crs="EPSG:4326",
    )
    return {"cells": cells, "pipes": pipes, "breaks": breaks}


def test_small_map_escapes_text_and_counts(tmp_path: Path) -> None:
    layers = _small_layers()
    out = write_html_map(layers, tmp_path / "m" / "map.html", title="A <title> & more")
    assert out["layers"] == {"cells": 2, "pipes": 1, "breaks": 3}
    text = Path(out["path"]).read_text(encoding="utf-8")
    assert out["bytes"] == len(text.encode("utf-8"))
    assert text.count("</script>") == 2  # the data block and the renderer, nothing injected
    assert "<b>two" not in text and "alert(1)</script>" not in text
    assert "<title>A &lt;title&gt; &amp; more</title>" in text
    assert "\\u003c/script\\u003e" in text
    # same layers, same bytes; a different title changes them
    again = html_map(layers, title="A <title> & more")[0]
    assert again == text
    assert html_map(layers, title="Other")[0] != text


def test_small_map_renders_in_chromium(tmp_path: Path) -> None:
    layers = _small_layers()
    page = tmp_path / "small.html"
    write_html_map(layers, page)
    res = _run_chromium(page, tmp_path, "--dump-dom")
    body = _body(res.stdout)
    assert body.get("status") == "ready", body
    assert body.get("errors") == "0", body
    assert body.get("drawn") == "5", body  # 2 cells, 1 pipe, breaks of 2016 and 2015
    assert body.get("requests") == "0", body
    assert _console_lines(res.stderr) == []
    assert "alert(1)" not in res.stdout.split('id="twmb-data"')[0]


def test_basemap_toggle_requests_only_osm_tiles(tmp_path: Path) -> None:
    """Switched on, the basemap asks for OSM tiles (they fail here: no name resolves)."""
    page = tmp_path / "basemap.html"
    text = html_map(_small_layers())[0]
    # record every image URL the page sets, then switch the basemap on
    probe = """<script>
    const urls = [];
    const src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
    Object.defineProperty(HTMLImageElement.prototype, "src", {
      get() { return src.get.call(this); },
      set(value) { urls.push(value); src.set.call(this, value); },
    });
    document.getElementById("layer-basemap").click();
    setTimeout(() => { document.body.dataset.urls = urls.join(" "); }, 1000);
    </script>"""
    page.write_text(text.replace("</body>", probe + "</body>"), encoding="utf-8")
    body = _body(_run_chromium(page, tmp_path, "--dump-dom").stdout)
    assert body.get("status") == "ready" and body.get("errors") == "0", body
    urls = body.get("urls", "").split()
    assert urls, body
    assert all(re.fullmatch(r"https://tile\.openstreetmap\.org/\d+/\d+/\d+\.png", u) for u in urls)


# -- the Toronto map -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def toronto_layers(bundled_run: dict, bundled_cfg) -> dict[str, gpd.GeoDataFrame]:
    with Store(bundled_cfg.store_path, read_only=True) as store:
        return map_layers(store)


TORONTO_TEXTS = {
    "title": f"{default_config().city_name} water main breaks",
    "source": default_config().credit_line(),
}


@pytest.fixture(scope="module")
def toronto_map(
    toronto_layers: dict[str, gpd.GeoDataFrame], tmp_path_factory: pytest.TempPathFactory
) -> dict:
    return write_html_map(
        toronto_layers, tmp_path_factory.mktemp("html_map") / "map.html", **TORONTO_TEXTS
    )


def test_toronto_map_is_self_contained(toronto_map: dict, toronto_layers: dict) -> None:
    path = Path(toronto_map["path"])
    text = path.read_text(encoding="utf-8")
    assert toronto_map["layers"] == {name: len(gdf) for name, gdf in toronto_layers.items()}
    assert 0 < toronto_map["bytes"] == path.stat().st_size < 15_000_000
    lowered = text.lower()
    for bad in ("<script src", "<link", "@import", "url(http", "url(//"):
        assert bad not in lowered, bad
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", lowered)
    urls = set(re.findall(r"https?://[^\s\"'<>)]*", text))
    assert urls, "the optional basemap URL template should be there"
    assert all(u.startswith("https://tile.openstreetmap.org") for u in urls), urls
    assert OSM_TILE_URL in text
    assert "Content-Security-Policy" in text
    assert "Open Government Licence" in text


def test_toronto_map_is_deterministic(toronto_map: dict, toronto_layers: dict) -> None:
    first = Path(toronto_map["path"]).read_bytes()
    assert html_map(toronto_layers, **TORONTO_TEXTS)[0].encode("utf-8") == first


def test_toronto_map_loads_without_errors(
    toronto_map: dict, toronto_layers: dict, tmp_path: Path
) -> None:
    res = _run_chromium(Path(toronto_map["path"]), tmp_path, "--dump-dom")
    body = _body(res.stdout)
    assert body.get("status") == "ready", body
    assert body.get("errors") == "0", body
    assert int(body["drawn"]) == _expected_drawn(toronto_layers) > 0
    assert body.get("requests") == "0", body  # no network: the basemap is off by default
    assert _console_lines(res.stderr) == [], _console_lines(res.stderr)


def test_toronto_map_screenshot_is_not_blank(toronto_map: dict, tmp_path: Path) -> None:
    shot = tmp_path / "map.png"
    _run_chromium(Path(toronto_map["path"]), tmp_path, f"--screenshot={shot}")
    img = _read_png(shot)[..., :3]
    assert img.shape[:2] == (900, 1280)
    # the map's middle, left of the panel
    centre = img[250:650, 200:800].reshape(-1, 3).astype(np.int32)
    background = np.abs(centre - np.array(BACKGROUND)).sum(axis=1) <= 6
    assert background.mean() < 0.5, f"{background.mean():.0%} of the centre is background"
    colours = np.unique(centre // 16, axis=0)  # coarse colour bins
    assert len(colours) >= 8, len(colours)


# -- layers larger than a page holds -----------------------------------------------------------


def _points(n: int) -> list[shapely.Point]:
    return [shapely.Point(-79.4 + 1e-4 * i, 43.7) for i in range(n)]


@settings(max_examples=80, derandomize=True, deadline=None)
@given(
    ranks=st.lists(st.one_of(st.none(), st.integers(1, 12)), max_size=40),
    limit=st.integers(1, 45),
)
def test_cut_units_are_the_highest_risk(ranks: list[int | None], limit: int) -> None:
    """The ``limit`` units of lowest rank (ties by unit id, unranked last), in their order."""
    ids = [f"u{(7 * i) % 41:02d}" for i in range(len(ranks))]  # rows not in id order
    gdf = gpd.GeoDataFrame(
        {"unit_id": ids, "rank": pd.array(ranks, dtype="Int64")},
        geometry=_points(len(ranks)),
        crs="EPSG:4326",
    )
    out = html_subset("pipes", gdf, limit)
    order = sorted(range(len(ranks)), key=lambda i: (ranks[i] is None, ranks[i] or 0, ids[i]))
    assert list(out.index) == sorted(order[:limit])
    assert out is gdf or len(out) == limit < len(gdf)


@settings(max_examples=80, derandomize=True, deadline=None)
@given(
    years=st.lists(st.one_of(st.none(), st.integers(2000, 2007)), max_size=60),
    limit=st.integers(1, 70),
)
def test_cut_breaks_are_the_latest_whole_years(years: list[int | None], limit: int) -> None:
    gdf = gpd.GeoDataFrame(
        {"break_id": [f"B{i}" for i in range(len(years))], "year": pd.array(years, "Int64")},
        geometry=_points(len(years)),
        crs="EPSG:4326",
    )
    out = html_subset("breaks", gdf, limit)
    if len(years) <= limit:
        assert out is gdf
        return
    kept = set(out["year"].dropna().astype(int))
    known = sorted({y for y in years if y is not None}, reverse=True)
    assert list(out.index) == [i for i, y in enumerate(years) if y in kept]  # whole years
    assert sorted(kept, reverse=True) == known[: len(kept)]  # the latest ones
    assert len(kept) >= 1 or not known
    if len(kept) > 1:
        assert len(out) <= limit
    if len(kept) < len(known):  # the next year would not fit
        assert len(out) + years.count(known[len(kept)]) > limit


@settings(max_examples=120, derandomize=True, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(2000, 2007)), max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=6),
    limit=st.integers(1, 70),
    layer=st.sampled_from(["pipes", "breaks"]),
)
def test_a_layer_cut_in_blocks_is_cut_as_a_whole(
    values: list[int | None], cuts: list[int], limit: int, layer: str
) -> None:
    """Blocks (each indexed from 0, as the store's blocks are) give the rows and index of
    the whole layer's cut; a unit layer's cut holds at most ``limit`` rows between blocks."""
    n = len(values)
    whole = gpd.GeoDataFrame(
        {
            "unit_id": [f"u{(7 * i) % 61:02d}" for i in range(n)],
            "rank": pd.array(values, dtype="Int64"),
            "year": pd.array(values, dtype="Int64"),
        },
        geometry=_points(n),
        crs="EPSG:4326",
    )
    expected = html_subset(layer, whole, limit)
    bounds = sorted({0, n, *(c for c in cuts if c <= n)})
    subset = HtmlSubset(layer, limit)
    for start, stop in list(itertools.pairwise(bounds)) or [(0, 0)]:
        subset.add(whole.iloc[start:stop].reset_index(drop=True))
        if layer == "pipes":
            assert sum(len(p) for p in subset._parts) <= limit
    got = subset.result()
    pd.testing.assert_frame_equal(pd.DataFrame(got), pd.DataFrame(expected))
    assert subset.rows == n


def test_a_cut_needs_a_block() -> None:
    with pytest.raises(ValueError, match="no block"):
        HtmlSubset("pipes", 5).result()


def test_html_subset_refuses_a_bad_limit() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        html_subset("pipes", _small_layers()["pipes"], 0)


def test_a_cut_map_says_so_and_renders(tmp_path: Path) -> None:
    layers = _small_layers()
    page = tmp_path / "cut.html"
    out = write_html_map(layers, page, max_features=1)
    assert out["layers"] == {"cells": 1, "pipes": 1, "breaks": 1}
    assert out["totals"] == {"cells": 2, "pipes": 1, "breaks": 3}
    res = _run_chromium(page, tmp_path, "--dump-dom")
    body = _body(res.stdout)
    assert body.get("status") == "ready" and body.get("errors") == "0", body
    assert body.get("drawn") == "3", body  # one cell, the pipe, the breaks of 2016
    assert "(1 of 2, highest risk)" in res.stdout
    assert "(1 of 3, latest years)" in res.stdout
    assert "(1)" in res.stdout  # the pipe layer is whole: no "of"
    assert _console_lines(res.stderr) == []
    # already cut layers with their totals give the same page
    cut = {k: html_subset(k, v, 1) for k, v in layers.items()}
    again = write_html_map(cut, tmp_path / "again.html", max_features=1, totals=out["totals"])
    assert Path(again["path"]).read_bytes() == page.read_bytes()
