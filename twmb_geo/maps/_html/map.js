/* twmb_geo offline map renderer (inlined into the HTML map; no dependencies).
 *
 * Reads the JSON in <script id="twmb-data">: Web Mercator coordinates as integer steps of
 * `res` metres from `origin`, delta-encoded per ring/line (points: two columns of steps),
 * and properties as columns (plain lists, or {cats, codes} for repeated strings).
 * Draws them on a canvas with pan (drag), zoom (wheel, buttons, keys), layer toggles, a
 * legend, tooltips, a scale bar and an optional OpenStreetMap basemap that makes requests
 * only when switched on while online.
 *
 * For headless checks, <body> gets data-status="ready", data-drawn (features drawn),
 * data-errors (script errors caught by window.onerror) and data-requests (resources the page
 * has requested: 0 unless the basemap is on) after the first draw.
 */
(function () {
  "use strict";

  // ---- errors: counted for headless tests -------------------------------------------------
  const errors = [];
  function noteError(message) {
    errors.push(String(message));
    document.body.dataset.errors = String(errors.length);
  }
  window.onerror = function (message) {
    noteError(message);
    return false;
  };
  window.addEventListener("unhandledrejection", function (event) {
    noteError(event.reason);
  });

  // ---- constants and palettes -------------------------------------------------------------
  const R = 6378137; // Web Mercator sphere radius, m
  const WORLD = 2 * Math.PI * R; // width of the Web Mercator world, m
  const TILE = 256; // basemap tile size, CSS px
  const MIN_RES = 0.25; // m per CSS px at the closest zoom
  const MAX_RES = WORLD / TILE; // m per CSS px with the whole world in one tile
  const MAX_TILES = 120; // never request more basemap tiles than this for one view

  // Risk tiers: viridis (colour-blind safe, ordered dark = high risk to light = low risk).
  const TIER_COLOURS = {
    very_high: "#440154",
    high: "#3b528b",
    elevated: "#21918c",
    low: "#fde725",
    unscored: "#b4b4b4",
  };
  // Hot-spot persistence classes: Okabe-Ito; classes not listed are not drawn.
  const HOT_COLOURS = {
    "persistent hot spot": "#D55E00",
    "emerging hot spot": "#E69F00",
    "intermittent hot spot": "#CC79A7",
    "transient hot spot": "#F0E442",
    "persistent cold spot": "#0072B2",
  };
  // Okabe-Ito, for categories without a fixed colour (e.g. custom tier names)
  const EXTRA_COLOURS = ["#0072B2", "#E69F00", "#CC79A7", "#56B4E9", "#009E73", "#F0E442", "#000000"];
  const BREAK_RECENT = "#D55E00"; // breaks of the latest data year
  const BREAK_OLDER = "#1f1f1f"; // earlier breaks

  // ---- data ------------------------------------------------------------------------------
  const DATA = JSON.parse(document.getElementById("twmb-data").textContent);
  const RES = DATA.res;
  const OX = DATA.origin[0];
  const OY = DATA.origin[1];
  const LAST_YEAR = DATA.lastYear;

  /** One delta-encoded part (flat [x0, y0, dx1, dy1, ...]) to absolute metres. */
  function decodePart(steps) {
    const out = new Float64Array(steps.length);
    let x = 0;
    let y = 0;
    for (let k = 0; k < steps.length; k += 2) {
      x += steps[k];
      y += steps[k + 1];
      out[k] = OX + x * RES;
      out[k + 1] = OY + y * RES;
    }
    return out;
  }

  /** A layer of the data: features with parts and bounding boxes, or point columns. */
  function decodeLayer(layer) {
    const src = {
      name: layer.name,
      kind: layer.kind,
      n: layer.n,
      total: layer.total === undefined ? layer.n : layer.total,
      subset: layer.subset || null,
      props: layer.props,
    };
    if (layer.kind === "point") {
      src.xs = new Float64Array(layer.n);
      src.ys = new Float64Array(layer.n);
      src.ok = new Uint8Array(layer.n);
      for (let i = 0; i < layer.n; i++) {
        const x = layer.geom.x[i];
        const y = layer.geom.y[i];
        if (x === null || y === null) continue;
        src.xs[i] = OX + x * RES;
        src.ys[i] = OY + y * RES;
        src.ok[i] = 1;
      }
      return src;
    }
    src.features = [];
    for (let i = 0; i < layer.n; i++) {
      const parts = layer.geom[i].map(decodePart);
      const box = [Infinity, Infinity, -Infinity, -Infinity];
      for (const p of parts) {
        for (let k = 0; k < p.length; k += 2) {
          if (p[k] < box[0]) box[0] = p[k];
          if (p[k + 1] < box[1]) box[1] = p[k + 1];
          if (p[k] > box[2]) box[2] = p[k];
          if (p[k + 1] > box[3]) box[3] = p[k + 1];
        }
      }
      src.features.push({ i: i, parts: parts, box: box });
    }
    return src;
  }

  /** Property `name` of feature `i` (null when missing). */
  function prop(src, name, i) {
    const col = src.props[name];
    if (col === undefined) return null;
    if (Array.isArray(col)) return col[i] === undefined ? null : col[i];
    const code = col.codes[i];
    return code === null || code === undefined ? null : col.cats[code];
  }

  /** The categories of a property column, in legend order. */
  function categories(src, name) {
    const col = src.props[name];
    if (col === undefined) return [];
    if (!Array.isArray(col)) return col.cats.slice();
    return Array.from(new Set(col.filter((v) => v !== null))).sort();
  }

  const SOURCES = {};
  for (const layer of DATA.layers) SOURCES[layer.name] = decodeLayer(layer);

  // ---- formatting ------------------------------------------------------------------------
  function titleCase(text) {
    const s = String(text).replace(/_/g, " ");
    return s.charAt(0).toUpperCase() + s.slice(1);
  }
  function fmt(value, digits) {
    if (value === null || value === undefined || !isFinite(value)) return "–";
    const a = Math.abs(value);
    if (a >= 1000) return Math.round(value).toLocaleString("en-CA");
    if (a >= 100) return value.toFixed(0);
    if (a === 0) return "0";
    return Number(value.toPrecision(digits || 3)).toString();
  }
  function fmtPercent(p) {
    return p === null ? "–" : fmt(p * 100, 2) + "%";
  }
  function colourFor(palette, cats, cat) {
    if (palette[cat]) return palette[cat];
    const unknown = cats.filter((c) => !palette[c]);
    return EXTRA_COLOURS[Math.max(0, unknown.indexOf(cat)) % EXTRA_COLOURS.length];
  }

  // ---- the view --------------------------------------------------------------------------
  const mapEl = document.getElementById("map");
  const canvas = document.getElementById("map-canvas");
  const overlay = document.getElementById("map-overlay");
  const ctx = canvas.getContext("2d");
  const octx = overlay.getContext("2d");
  const tooltip = document.getElementById("tooltip");
  // centre (Web Mercator m), resolution (m per CSS px) and the canvas size (CSS px)
  const view = { cx: 0, cy: 0, res: 100, w: 1, h: 1 };

  function toScreenX(x) {
    return (x - view.cx) / view.res + view.w / 2;
  }
  function toScreenY(y) {
    return (view.cy - y) / view.res + view.h / 2;
  }
  function toMapX(sx) {
    return view.cx + (sx - view.w / 2) * view.res;
  }
  function toMapY(sy) {
    return view.cy - (sy - view.h / 2) * view.res;
  }
  /** Whether a bounding box (m) overlaps the view, with a margin in px. */
  function inView(box, marginPx) {
    const m = (marginPx || 0) * view.res;
    return (
      box[2] >= toMapX(0) - m &&
      box[0] <= toMapX(view.w) + m &&
      box[3] >= toMapY(view.h) - m &&
      box[1] <= toMapY(0) + m
    );
  }

  function resize() {
    const dpr = window.devicePixelRatio || 1;
    view.w = Math.max(1, mapEl.clientWidth);
    view.h = Math.max(1, mapEl.clientHeight);
    for (const c of [canvas, overlay]) {
      c.width = Math.round(view.w * dpr);
      c.height = Math.round(view.h * dpr);
      c.style.width = view.w + "px";
      c.style.height = view.h + "px";
      c.getContext("2d").setTransform(dpr, 0, 0, dpr, 0, 0);
    }
  }

  /** Centre the data's bounding box in the part of the window the panel leaves free. */
  function fit() {
    const b = DATA.bbox;
    const x0 = OX + b[0] * RES;
    const y0 = OY + b[1] * RES;
    const x1 = OX + b[2] * RES;
    const y1 = OY + b[3] * RES;
    const panel = document.getElementById("panel");
    const padL = 56;
    const padR = view.w > 700 ? panel.offsetWidth + 24 : 16;
    const padT = 16;
    const padB = 48;
    const w = Math.max(50, view.w - padL - padR);
    const h = Math.max(50, view.h - padT - padB);
    view.res = clamp(Math.max((x1 - x0) / w, (y1 - y0) / h, MIN_RES), MIN_RES, MAX_RES);
    view.cx = (x0 + x1) / 2 + ((padR - padL) / 2) * view.res;
    view.cy = (y0 + y1) / 2 + ((padT - padB) / 2) * view.res;
  }

  function clamp(v, lo, hi) {
    return Math.min(hi, Math.max(lo, v));
  }

  /** Zoom to resolution `res`, keeping the map point under screen (sx, sy) in place. */
  function zoomTo(res, sx, sy) {
    const mx = toMapX(sx);
    const my = toMapY(sy);
    view.res = clamp(res, MIN_RES, MAX_RES);
    view.cx = mx - (sx - view.w / 2) * view.res;
    view.cy = my + (sy - view.h / 2) * view.res;
    requestDraw();
  }

  // ---- drawing helpers -------------------------------------------------------------------
  /** Add one ring/line to the current path, skipping vertices under half a pixel apart. */
  function trace(c, part, close) {
    const n = part.length;
    let px = toScreenX(part[0]);
    let py = toScreenY(part[1]);
    c.moveTo(px, py);
    for (let k = 2; k < n; k += 2) {
      const sx = toScreenX(part[k]);
      const sy = toScreenY(part[k + 1]);
      if (k < n - 2 && Math.abs(sx - px) + Math.abs(sy - py) < 0.5) continue;
      c.lineTo(sx, sy);
      px = sx;
      py = sy;
    }
    if (close) c.closePath();
  }

  /** Draw radius of break dots: grows slowly with zoom. */
  function dotRadius() {
    const zoom = Math.log2(WORLD / (TILE * view.res));
    return clamp(1.2 + (zoom - 11) * 0.6, 1.2, 4.5);
  }

  // ---- layers ----------------------------------------------------------------------------
  // Each display layer: id, title, src (decoded data), visible, key(i) -> style key or null
  // (null = not drawn), keys (drawing order; legend is the reverse), style(key), label(key).
  const layers = [];

  function tierLayer(id, title, src, visible, kind) {
    const cats = categories(src, "tier");
    if (!cats.length) cats.push("unscored");
    const scored = cats.some((c) => c !== "unscored");
    const def = {
      id: id,
      title: title,
      src: src,
      visible: visible,
      kind: kind,
      keys: cats.slice().reverse(),
      key: (i) => prop(src, "tier", i) || "unscored",
      label: (k) => titleCase(k),
      legendTitle: "risk tier",
      style: function (k) {
        const colour = colourFor(TIER_COLOURS, cats, k);
        if (kind === "line") {
          const tiers = cats.filter((c) => c !== "unscored");
          const rank = tiers.length - 1 - tiers.indexOf(k); // 0 = the lowest tier
          const width = k === "unscored" ? 1 : 1.2 + rank * 0.9;
          return { stroke: colour, width: width, casing: true };
        }
        if (k === "unscored") return { fill: colour, alpha: 0.25 };
        return { fill: colour, alpha: k === "low" ? 0.35 : 0.72 };
      },
    };
    if (id === "neighbourhoods" && !scored) {
      // unscored neighbourhoods: light land with boundaries
      def.keys = ["boundary"];
      def.key = () => "boundary";
      def.label = () => "Neighbourhood";
      def.legendTitle = "";
      def.style = () => ({ fill: "#ffffff", alpha: 0.6, stroke: "#4d4d4d", width: 0.8 });
    } else if (id === "neighbourhoods") {
      const inner = def.style;
      def.style = (k) => Object.assign(inner(k), { stroke: "#4d4d4d", width: 0.8 });
    }
    return def;
  }

  function hotspotLayer(src) {
    const present = categories(src, "hotspot_class").filter((c) => HOT_COLOURS[c]);
    if (!present.length) return null;
    return {
      id: "hotspots",
      title: "Hot spots",
      src: src,
      visible: false,
      kind: "polygon",
      keys: present.slice().reverse(),
      key: function (i) {
        const c = prop(src, "hotspot_class", i);
        return HOT_COLOURS[c] ? c : null;
      },
      label: (k) => titleCase(k),
      legendTitle: "persistence class",
      style: (k) => ({ fill: HOT_COLOURS[k], alpha: 1, stroke: "#333333", width: 0.6 }),
    };
  }

  // Breaks shown: the last `breakYears` data years (null = all years).
  const state = { breakYears: LAST_YEAR === null ? null : DATA.breakYears, basemap: false };

  function breaksLayer(src) {
    return {
      id: "breaks",
      title: "Breaks",
      src: src,
      visible: true,
      kind: "point",
      keys: ["older", "recent"],
      key: function (i) {
        if (!src.ok[i]) return null;
        const year = prop(src, "year", i);
        if (state.breakYears !== null && (year === null || year <= LAST_YEAR - state.breakYears)) {
          return null;
        }
        return year !== null && year === LAST_YEAR ? "recent" : "older";
      },
      label: function (k) {
        if (k === "recent") return String(LAST_YEAR);
        if (LAST_YEAR === null) return "Break";
        const from = state.breakYears === null ? FIRST_YEAR : LAST_YEAR - state.breakYears + 1;
        return from >= LAST_YEAR - 1 ? String(LAST_YEAR - 1) : from + "–" + (LAST_YEAR - 1);
      },
      legendTitle: "year",
      style: (k) => ({ fill: k === "recent" ? BREAK_RECENT : BREAK_OLDER }),
    };
  }

  let FIRST_YEAR = LAST_YEAR;
  if (SOURCES.breaks) {
    for (let i = 0; i < SOURCES.breaks.n; i++) {
      const y = prop(SOURCES.breaks, "year", i);
      if (y !== null && (FIRST_YEAR === null || y < FIRST_YEAR)) FIRST_YEAR = y;
    }
  }

  const TITLES = {
    neighbourhoods: "Neighbourhoods",
    cells: "H3 cells",
    streets: "Streets",
    pipes: "Pipes",
  };
  for (const name of ["neighbourhoods", "cells", "streets", "pipes"]) {
    const src = SOURCES[name];
    if (!src) continue;
    const kind = src.kind === "line" ? "line" : "polygon";
    layers.push(tierLayer(name, TITLES[name], src, true, kind));
  }
  if (SOURCES.cells) {
    const hot = hotspotLayer(SOURCES.cells);
    if (hot) layers.push(hot);
  }
  if (SOURCES.breaks) layers.push(breaksLayer(SOURCES.breaks));

  /** Features of a polygon/line layer to draw now, grouped by style key. */
  function groupFeatures(def) {
    const groups = new Map(def.keys.map((k) => [k, []]));
    for (const f of def.src.features) {
      if (!f.parts.length || !inView(f.box, 4)) continue;
      const k = def.key(f.i);
      if (k === null) continue;
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(f);
    }
    return groups;
  }

  // Features per path: Skia rasterises many small paths much faster than one huge path
  // (6,000 hexagons: ~5 ms instead of ~120 ms in software rendering).
  const CHUNK = 16;

  /** Fill and/or stroke the current path with a group's style. */
  function paint(c, st, closed) {
    if (closed) {
      c.globalAlpha = st.alpha;
      c.fillStyle = st.fill;
      c.fill("evenodd");
      c.globalAlpha = 1;
      if (st.stroke) {
        c.lineWidth = st.width;
        c.strokeStyle = st.stroke;
        c.stroke();
      }
      return;
    }
    c.lineJoin = "round";
    c.lineCap = "round";
    if (st.casing) {
      c.lineWidth = st.width + 1.5;
      c.strokeStyle = "rgba(0, 0, 0, 0.45)";
      c.stroke();
    }
    c.lineWidth = st.width;
    c.strokeStyle = st.stroke;
    c.stroke();
  }

  function drawShapes(c, def) {
    let drawn = 0;
    const closed = def.kind === "polygon";
    for (const [k, feats] of groupFeatures(def)) {
      const st = def.style(k);
      drawn += feats.length;
      for (let s = 0; s < feats.length; s += CHUNK) {
        c.beginPath();
        for (const f of feats.slice(s, s + CHUNK)) for (const p of f.parts) trace(c, p, closed);
        paint(c, st, closed);
      }
    }
    return drawn;
  }

  /** Indices of the points drawn now, grouped by style key. */
  function groupPoints(def) {
    const src = def.src;
    const groups = new Map(def.keys.map((k) => [k, []]));
    const x0 = toMapX(-8);
    const x1 = toMapX(view.w + 8);
    const y0 = toMapY(view.h + 8);
    const y1 = toMapY(-8);
    for (let i = 0; i < src.n; i++) {
      const x = src.xs[i];
      const y = src.ys[i];
      if (x < x0 || x > x1 || y < y0 || y > y1) continue;
      const k = def.key(i);
      if (k !== null) groups.get(k).push(i);
    }
    return groups;
  }

  function drawPoints(c, def) {
    const src = def.src;
    const r = dotRadius();
    let drawn = 0;
    for (const [k, idx] of groupPoints(def)) {
      if (!idx.length) continue;
      drawn += idx.length;
      const rr = k === "recent" ? r * 1.25 : r;
      c.beginPath();
      for (const i of idx) {
        const sx = toScreenX(src.xs[i]);
        const sy = toScreenY(src.ys[i]);
        c.moveTo(sx + rr, sy);
        c.arc(sx, sy, rr, 0, 2 * Math.PI);
      }
      c.fillStyle = def.style(k).fill;
      c.fill();
      if (r >= 2) {
        // a light halo once dots are big enough to show it (zoomed out it would grey the map)
        c.lineWidth = 0.6;
        c.strokeStyle = "rgba(255, 255, 255, 0.85)";
        c.stroke();
      }
    }
    return drawn;
  }

  // ---- the OpenStreetMap basemap (optional, online only) -------------------------------------
  const tiles = new Map(); // "z/x/y" -> Image
  const osmCredit = document.getElementById("osm-credit");
  const basemapNote = document.createElement("span"); // "offline" / "tiles unavailable"
  basemapNote.className = "note";
  let tilesLoaded = 0;
  let tilesFailed = 0;

  function updateBasemapNote() {
    if (!navigator.onLine) basemapNote.textContent = " – offline";
    else if (state.basemap && tilesFailed && !tilesLoaded) basemapNote.textContent = " – tiles unavailable";
    else basemapNote.textContent = "";
  }

  function basemapOn() {
    return state.basemap && navigator.onLine;
  }

  function drawTiles(c) {
    osmCredit.hidden = !basemapOn();
    if (!basemapOn()) return;
    const z = clamp(Math.round(Math.log2(WORLD / (TILE * view.res))), 0, 19);
    const n = Math.pow(2, z);
    const size = WORLD / n; // metres per tile
    const tx0 = Math.floor((toMapX(0) + WORLD / 2) / size);
    const tx1 = Math.floor((toMapX(view.w) + WORLD / 2) / size);
    const ty0 = Math.max(0, Math.floor((WORLD / 2 - toMapY(0)) / size));
    const ty1 = Math.min(n - 1, Math.floor((WORLD / 2 - toMapY(view.h)) / size));
    if ((tx1 - tx0 + 1) * (ty1 - ty0 + 1) > MAX_TILES) return;
    const wanted = new Set();
    for (let ty = ty0; ty <= ty1; ty++) {
      for (let tx = tx0; tx <= tx1; tx++) {
        const wx = ((tx % n) + n) % n; // wrap around the antimeridian
        const key = z + "/" + wx + "/" + ty;
        wanted.add(key);
        let img = tiles.get(key);
        if (!img) {
          img = new Image();
          img.onload = function () {
            tilesLoaded++;
            updateBasemapNote();
            requestDraw();
          };
          img.onerror = function () {
            img.failed = true; // not retried
            tilesFailed++;
            updateBasemapNote();
          };
          img.src = DATA.tiles.replace("{z}", z).replace("{x}", wx).replace("{y}", ty);
          tiles.set(key, img);
        }
        if (img.failed || !img.complete || !img.naturalWidth) continue;
        const sx = Math.floor(toScreenX(tx * size - WORLD / 2));
        const sy = Math.floor(toScreenY(WORLD / 2 - ty * size));
        const px = Math.ceil(size / view.res) + 1;
        c.drawImage(img, sx, sy, px, px);
      }
    }
    // forget tiles far from the view (oldest first)
    for (const key of tiles.keys()) {
      if (tiles.size <= 4 * MAX_TILES) break;
      if (!wanted.has(key)) tiles.delete(key);
    }
  }

  // ---- drawing ---------------------------------------------------------------------------
  let drawPending = false;
  /** Redraw at the next frame (at most once per frame). */
  function requestDraw() {
    if (drawPending) return;
    drawPending = true;
    const run = function () {
      if (!drawPending) return;
      drawPending = false;
      draw();
    };
    window.requestAnimationFrame(run);
    // fallback where no frames come (hidden tabs, headless browsers): whichever runs first draws
    window.setTimeout(run, 100);
  }

  /** Redraw everything; returns and records the number of features drawn. */
  function draw() {
    ctx.clearRect(0, 0, view.w, view.h);
    drawTiles(ctx);
    let drawn = 0;
    for (const def of layers) {
      if (!def.visible) continue;
      drawn += def.kind === "point" ? drawPoints(ctx, def) : drawShapes(ctx, def);
    }
    drawHighlight();
    updateScale();
    document.body.dataset.drawn = String(drawn);
    document.body.dataset.requests = String(performance.getEntriesByType("resource").length);
    return drawn;
  }

  // ---- scale bar ---------------------------------------------------------------------------
  function updateScale() {
    const lat = Math.atan(Math.sinh(view.cy / R));
    const metresPerPx = view.res * Math.cos(lat); // ground distance at the centre
    const target = 110 * metresPerPx;
    const pow = Math.pow(10, Math.floor(Math.log10(target)));
    const nice = [5, 2, 1].map((m) => m * pow).find((v) => v <= target) || pow;
    document.getElementById("scale-bar").style.width = Math.round(nice / metresPerPx) + "px";
    document.getElementById("scale-label").textContent =
      nice >= 1000 ? nice / 1000 + " km" : Math.round(nice) + " m";
  }

  // ---- panel: layer toggles and legend -------------------------------------------------------
  function buildControls() {
    const box = document.getElementById("layers");
    box.replaceChildren();
    const head = document.createElement("h2");
    head.textContent = "Layers";
    box.appendChild(head);
    for (const def of layers) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "checkbox";
      input.checked = def.visible;
      input.id = "layer-" + def.id;
      input.addEventListener("change", function () {
        def.visible = input.checked;
        hover = null;
        buildLegend();
        requestDraw();
      });
      const count = document.createElement("span");
      count.className = "count";
      const shown = def.id === "hotspots" ? sum(keyCounts(def)) : def.src.n;
      let text = shown.toLocaleString("en-CA");
      if (def.id !== "hotspots" && def.src.subset) {
        text += " of " + def.src.total.toLocaleString("en-CA") + ", " + def.src.subset;
        count.title = "The map holds a part of this layer; the map exports hold every feature.";
      }
      count.textContent = " (" + text + ")";
      label.append(input, " " + def.title, count);
      box.appendChild(label);
      if (def.id === "breaks" && LAST_YEAR !== null) box.appendChild(yearSelect());
    }
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.id = "layer-basemap";
    input.checked = state.basemap;
    input.addEventListener("change", function () {
      state.basemap = input.checked;
      updateBasemapNote();
      requestDraw();
    });
    label.append(input, " OpenStreetMap basemap (online)", basemapNote);
    box.appendChild(label);
    updateBasemapNote();
    window.addEventListener("online", function () {
      updateBasemapNote();
      requestDraw();
    });
    window.addEventListener("offline", updateBasemapNote);
  }

  function yearSelect() {
    const select = document.createElement("select");
    select.id = "break-years";
    select.setAttribute("aria-label", "Breaks shown");
    const spans = Array.from(new Set([1, DATA.breakYears, 10]))
      .filter((n) => n < LAST_YEAR - FIRST_YEAR + 1)
      .sort((a, b) => a - b);
    const options = spans.map((n) => [
      String(n),
      n === 1 ? "Last year (" + LAST_YEAR + ")" : "Last " + n + " years (" + (LAST_YEAR - n + 1) + "–" + LAST_YEAR + ")",
    ]);
    options.push(["all", "All years (" + (FIRST_YEAR === LAST_YEAR ? LAST_YEAR : FIRST_YEAR + "–" + LAST_YEAR) + ")"]);
    for (const [value, text] of options) {
      const opt = document.createElement("option");
      opt.value = value;
      opt.textContent = text;
      select.appendChild(opt);
    }
    if (state.breakYears !== null && !spans.includes(state.breakYears)) state.breakYears = null;
    select.value = state.breakYears === null ? "all" : String(state.breakYears);
    select.addEventListener("change", function () {
      state.breakYears = select.value === "all" ? null : Number(select.value);
      hover = null;
      buildLegend();
      requestDraw();
    });
    return select;
  }

  function sum(counts) {
    let total = 0;
    for (const v of counts.values()) total += v;
    return total;
  }

  /** Features per style key of a layer (whole layer, not only the view). */
  function keyCounts(def) {
    const counts = new Map(def.keys.map((k) => [k, 0]));
    if (def.kind === "point") {
      for (let i = 0; i < def.src.n; i++) {
        const k = def.key(i);
        if (k !== null) counts.set(k, counts.get(k) + 1);
      }
    } else {
      for (const f of def.src.features) {
        const k = f.parts.length ? def.key(f.i) : null;
        if (k !== null) counts.set(k, (counts.get(k) || 0) + 1);
      }
    }
    return counts;
  }

  function swatch(def, k) {
    const st = def.style(k);
    const el = document.createElement("span");
    el.className = "swatch";
    if (def.kind === "line") {
      el.classList.add("line");
      el.style.borderTopWidth = Math.max(2, Math.round(st.width)) + "px";
      el.style.borderTopColor = st.stroke;
    } else if (def.kind === "point") {
      el.classList.add("dot");
      el.style.background = st.fill;
    } else {
      el.style.background = st.fill;
      el.style.opacity = String(Math.max(st.alpha, 0.35));
      if (st.stroke) el.style.borderColor = st.stroke;
    }
    return el;
  }

  function buildLegend() {
    const box = document.getElementById("legend");
    box.replaceChildren();
    for (const def of layers.slice().reverse()) {
      if (!def.visible) continue;
      const head = document.createElement("h2");
      head.textContent = def.title + (def.legendTitle ? " – " + def.legendTitle : "");
      box.appendChild(head);
      const counts = keyCounts(def);
      for (const k of def.keys.slice().reverse()) {
        if (!counts.get(k)) continue;
        const row = document.createElement("div");
        row.className = "legend-row";
        const count = document.createElement("span");
        count.className = "count";
        count.textContent = "(" + counts.get(k).toLocaleString("en-CA") + ")";
        row.append(swatch(def, k), def.label(k) + " ", count);
        box.appendChild(row);
      }
    }
  }

  // ---- hit testing and tooltips ----------------------------------------------------------
  let hover = null; // {def, i}

  function pointInParts(parts, x, y) {
    let inside = false; // even-odd rule over every ring
    for (const p of parts) {
      const n = p.length;
      for (let k = 0, j = n - 2; k < n; j = k, k += 2) {
        const xi = p[k];
        const yi = p[k + 1];
        const xj = p[j];
        const yj = p[j + 1];
        if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
      }
    }
    return inside;
  }

  function segmentDistance(p, x, y) {
    let best = Infinity;
    for (let k = 0; k + 3 < p.length; k += 2) {
      const ax = p[k];
      const ay = p[k + 1];
      const dx = p[k + 2] - ax;
      const dy = p[k + 3] - ay;
      const len2 = dx * dx + dy * dy;
      const t = len2 ? clamp(((x - ax) * dx + (y - ay) * dy) / len2, 0, 1) : 0;
      const ex = ax + t * dx - x;
      const ey = ay + t * dy - y;
      best = Math.min(best, ex * ex + ey * ey);
    }
    return Math.sqrt(best);
  }

  /** The topmost drawn feature under screen point (sx, sy), or null. */
  function hitTest(sx, sy) {
    const x = toMapX(sx);
    const y = toMapY(sy);
    for (const def of layers.slice().reverse()) {
      if (!def.visible) continue;
      if (def.kind === "point") {
        const src = def.src;
        const tol = (dotRadius() + 3) * view.res;
        let best = null;
        let bestD = tol * tol;
        for (let i = 0; i < src.n; i++) {
          const dx = src.xs[i] - x;
          const dy = src.ys[i] - y;
          const d = dx * dx + dy * dy;
          if (d <= bestD && def.key(i) !== null) {
            best = i;
            bestD = d;
          }
        }
        if (best !== null) return { def: def, i: best };
      } else if (def.kind === "line") {
        const tol = 5 * view.res;
        let best = null;
        let bestD = tol;
        for (const f of def.src.features) {
          const b = f.box;
          if (x < b[0] - tol || x > b[2] + tol || y < b[1] - tol || y > b[3] + tol) continue;
          if (def.key(f.i) === null) continue;
          for (const p of f.parts) {
            const d = segmentDistance(p, x, y);
            if (d <= bestD) {
              best = f.i;
              bestD = d;
            }
          }
        }
        if (best !== null) return { def: def, i: best };
      } else {
        for (const f of def.src.features) {
          const b = f.box;
          if (x < b[0] || x > b[2] || y < b[1] || y > b[3]) continue;
          if (def.key(f.i) !== null && pointInParts(f.parts, x, y)) return { def: def, i: f.i };
        }
      }
    }
    return null;
  }

  function drawHighlight() {
    octx.clearRect(0, 0, view.w, view.h);
    if (!hover) return;
    const def = hover.def;
    octx.beginPath();
    if (def.kind === "point") {
      const sx = toScreenX(def.src.xs[hover.i]);
      const sy = toScreenY(def.src.ys[hover.i]);
      octx.arc(sx, sy, dotRadius() + 3, 0, 2 * Math.PI);
    } else {
      for (const p of def.src.features[hover.i].parts) trace(octx, p, def.kind === "polygon");
    }
    octx.lineJoin = "round";
    octx.lineWidth = 4;
    octx.strokeStyle = "rgba(255, 255, 255, 0.9)";
    octx.stroke();
    octx.lineWidth = 2;
    octx.strokeStyle = "#000000";
    octx.stroke();
  }

  /** Rows [name, value] of the tooltip of feature i. */
  function tooltipRows(def, i) {
    const src = def.src;
    const p = (name) => prop(src, name, i);
    const rows = [];
    const add = (name, value) => {
      if (value !== null && value !== undefined && value !== "") rows.push([name, String(value)]);
    };
    if (src.kind === "point") {
      add("Date", p("date"));
      add("Material", p("material_desc") || "unknown");
      const d = p("diameter_mm");
      add("Diameter", d === null ? null : fmt(d) + " mm");
      add("Neighbourhood", p("neighbourhood_name"));
      return { title: "Break " + (p("break_id") || ""), rows: rows };
    }
    if (src.name !== "neighbourhoods") add("Neighbourhood", p("neighbourhood_name"));
    const tier = p("tier");
    const year = p("score_year");
    add("Risk tier", tier ? titleCase(tier) + (year !== null ? " (" + year + ")" : "") : null);
    if (p("risk_score") !== null) {
      add("Risk score", fmt(p("risk_score")));
      add("Chance of a break", fmtPercent(p("probability")));
      add("Expected breaks", fmt(p("expected_breaks")));
      const rank = p("rank");
      const pct = p("percentile");
      add(
        "Rank",
        rank === null ? null : rank + " of " + src.scored + (pct !== null ? " (percentile " + pct.toFixed(1) + ")" : "")
      );
    }
    const total = p("breaks_total");
    if (total !== null) {
      add("Breaks", total + " in total" + (LAST_YEAR !== null ? ", " + (p("breaks_last_year") || 0) + " in " + LAST_YEAR : ""));
    }
    const hot = p("hotspot_class");
    if (hot && hot !== "not computed") {
      const years = p("years_hot");
      add("Hot spot", titleCase(hot) + (years ? " (hot in " + years + " year" + (years > 1 ? "s" : "") + ")" : ""));
    }
    const lisa = p("lisa_cluster");
    if (lisa && lisa !== "not computed") add("LISA cluster", titleCase(lisa));
    add("Material", p("material_desc"));
    const d = p("diameter_mm");
    add("Diameter", d === null ? null : fmt(d) + " mm");
    add("Installed", p("install_year"));
    add("Status", p("status"));
    add("Class", p("feature_class"));
    const drivers = p("drivers");
    add("Drivers", drivers && drivers.length > 160 ? drivers.slice(0, 157) + "…" : drivers);
    return { title: p("label") || "", rows: rows };
  }

  function showTooltip(hit, sx, sy) {
    if (!hit) {
      tooltip.hidden = true;
      return;
    }
    const content = tooltipRows(hit.def, hit.i);
    const title = document.createElement("strong");
    title.textContent = content.title;
    const table = document.createElement("table");
    for (const [name, value] of content.rows) {
      const tr = table.insertRow();
      const th = document.createElement("th");
      th.textContent = name;
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(th, td);
    }
    tooltip.replaceChildren(title, table);
    tooltip.hidden = false;
    const w = tooltip.offsetWidth;
    const h = tooltip.offsetHeight;
    tooltip.style.left = (sx + 14 + w > view.w ? Math.max(0, sx - 14 - w) : sx + 14) + "px";
    tooltip.style.top = (sy + 14 + h > view.h ? Math.max(0, sy - 14 - h) : sy + 14) + "px";
  }

  // ---- interaction -----------------------------------------------------------------------
  let drag = null;
  let pendingHover = null;

  function localXY(event) {
    const rect = mapEl.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  }

  function updateHover() {
    const pos = pendingHover;
    pendingHover = null;
    if (!pos || drag) return;
    const hit = hitTest(pos[0], pos[1]);
    const changed = (hit && hit.def) !== (hover && hover.def) || (hit && hit.i) !== (hover && hover.i);
    hover = hit;
    if (changed) drawHighlight();
    showTooltip(hit, pos[0], pos[1]);
  }

  mapEl.addEventListener("pointerdown", function (event) {
    if (event.button !== 0) return;
    drag = { x: event.clientX, y: event.clientY, cx: view.cx, cy: view.cy };
    mapEl.setPointerCapture(event.pointerId);
    mapEl.classList.add("dragging");
    tooltip.hidden = true;
  });
  mapEl.addEventListener("pointermove", function (event) {
    if (drag) {
      view.cx = drag.cx - (event.clientX - drag.x) * view.res;
      view.cy = drag.cy + (event.clientY - drag.y) * view.res;
      requestDraw();
      return;
    }
    if (!pendingHover) window.requestAnimationFrame(updateHover);
    pendingHover = localXY(event);
  });
  function endDrag(event) {
    if (!drag) return;
    drag = null;
    mapEl.classList.remove("dragging");
    if (mapEl.hasPointerCapture(event.pointerId)) mapEl.releasePointerCapture(event.pointerId);
  }
  mapEl.addEventListener("pointerup", endDrag);
  mapEl.addEventListener("pointercancel", endDrag);
  mapEl.addEventListener("pointerleave", function () {
    pendingHover = null;
    hover = null;
    tooltip.hidden = true;
    drawHighlight();
  });
  mapEl.addEventListener(
    "wheel",
    function (event) {
      event.preventDefault();
      const unit = event.deltaMode === 1 ? 33 : event.deltaMode === 2 ? view.h : 1;
      const [sx, sy] = localXY(event);
      zoomTo(view.res * Math.exp(event.deltaY * unit * 0.0025), sx, sy);
    },
    { passive: false }
  );
  mapEl.addEventListener("dblclick", function (event) {
    const [sx, sy] = localXY(event);
    zoomTo(view.res / 2, sx, sy);
  });
  document.getElementById("zoom-in").addEventListener("click", () => zoomTo(view.res / 2, view.w / 2, view.h / 2));
  document.getElementById("zoom-out").addEventListener("click", () => zoomTo(view.res * 2, view.w / 2, view.h / 2));
  document.getElementById("zoom-fit").addEventListener("click", function () {
    fit();
    requestDraw();
  });
  document.addEventListener("keydown", function (event) {
    if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement) return;
    if (event.key === "+" || event.key === "=") zoomTo(view.res / 2, view.w / 2, view.h / 2);
    else if (event.key === "-") zoomTo(view.res * 2, view.w / 2, view.h / 2);
    else if (event.key === "0") {
      fit();
      requestDraw();
    }
  });
  window.addEventListener("resize", function () {
    resize();
    requestDraw();
  });

  // ---- start: first draw, synchronously, then report the status ------------------------------
  try {
    for (const src of Object.values(SOURCES)) {
      if (src.props.rank) src.scored = src.props.rank.filter((r) => r !== null).length;
    }
    buildControls();
    buildLegend();
    resize();
    fit();
    const drawn = draw();
    document.body.dataset.drawn = String(drawn);
    document.body.dataset.status = "ready";
  } catch (err) {
    noteError(err && err.stack ? err.stack : err);
    document.body.dataset.status = "error";
  }
})();
