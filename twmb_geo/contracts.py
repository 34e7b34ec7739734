"""Table contracts: load the JSON schemas in ``schemas/`` and validate frames against them.

The schema files are the single definition of every table; code reads them for column
order, dtypes, DuckDB DDL and checks, so a table cannot drift from its contract unnoticed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd

from ._paths import schemas_dir
from .core.crs import area_of_use_bounds, crs_name, current_crs
from .errors import ContractError

__all__ = [
    "Field",
    "TableSchema",
    "conform",
    "conform_chunks",
    "duckdb_type",
    "list_schemas",
    "load_schema",
    "validate_frame",
]

_DUCKDB_TYPES = {
    "string": "VARCHAR",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "wkb": "BLOB",
    "any": "VARCHAR",
}
_MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Field:
    """One column of a contract."""

    name: str
    type: str
    description: str
    nullable: bool = True
    required: bool = True
    unit: str | None = None
    minimum: float | str | None = None
    maximum: float | str | None = None
    enum: tuple[Any, ...] | None = None
    pattern: str | None = None
    geometry_type: str | None = None
    crs: str | None = None


@dataclass(frozen=True)
class TableSchema:
    """A versioned table contract loaded from ``schemas/<layer>/<name>.json``."""

    name: str
    layer: str
    version: str
    description: str
    fields: tuple[Field, ...]
    crs: dict[str, str] = field(default_factory=dict)
    primary_key: tuple[str, ...] = ()
    sort_by: tuple[str, ...] = ()
    path: Path | None = None

    @property
    def columns(self) -> list[str]:
        """Column names in contract order."""
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        """Return the field called ``name``."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.layer}/{self.name} has no field {name!r}")

    def ddl(self, table: str | None = None) -> str:
        """DuckDB ``CREATE TABLE`` statement for this contract."""
        cols = ", ".join(
            f'"{f.name}" {duckdb_type(f.type)}{"" if f.nullable else " NOT NULL"}'
            for f in self.fields
        )
        return f'CREATE TABLE "{table or self.name}" ({cols})'


def duckdb_type(type_name: str) -> str:
    """DuckDB column type for a contract type name."""
    return _DUCKDB_TYPES[type_name]


@cache
def _meta_schema() -> dict[str, Any]:
    with (schemas_dir() / "meta" / "table-schema.json").open(encoding="utf-8") as fh:
        return json.load(fh)


def list_schemas(layer: str | None = None) -> list[str]:
    """Names ``layer/name`` of every contract file, sorted."""
    root = schemas_dir()
    layers = [layer] if layer else sorted(p.name for p in root.iterdir() if p.is_dir())
    out: list[str] = []
    for lay in layers:
        if lay == "meta":
            continue
        out.extend(f"{lay}/{p.stem}" for p in sorted((root / lay).glob("*.json")))
    return out


@cache
def load_schema(ref: str) -> TableSchema:
    """Load and meta-validate a contract, e.g. ``load_schema("curated/breaks")``.

    ``ref`` may also be a path to a JSON file (for user-defined raw schemas).
    """
    path = Path(ref)
    if not path.suffix:
        path = schemas_dir() / f"{ref}.json"
    elif not path.is_absolute() and not path.exists():
        path = schemas_dir() / ref
    if not path.exists():
        raise ContractError(f"schema {ref!r} not found (looked for {path})")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ContractError(f"schema file {path} is not valid JSON: {exc}") from None
    validator = jsonschema.Draft202012Validator(_meta_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        raise ContractError(
            f"schema file {path} does not follow schemas/meta/table-schema.json",
            [f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors],
        )
    fields = tuple(
        Field(
            name=f["name"],
            type=f["type"],
            description=f["description"],
            nullable=f.get("nullable", True),
            required=f.get("required", True),
            unit=f.get("unit"),
            minimum=f.get("minimum"),
            maximum=f.get("maximum"),
            enum=tuple(f["enum"]) if "enum" in f else None,
            pattern=f.get("pattern"),
            geometry_type=f.get("geometry_type"),
            crs=f.get("crs"),
        )
        for f in doc["fields"]
    )
    names = [f.name for f in fields]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ContractError(f"schema file {path} declares duplicate fields: {', '.join(dupes)}")
    for key in (*doc.get("primary_key", []), *doc.get("sort_by", [])):
        if key not in names:
            raise ContractError(f"schema file {path}: key column {key!r} is not a field")
    return TableSchema(
        name=doc["name"],
        layer=doc["layer"],
        version=doc["version"],
        description=doc["description"],
        fields=fields,
        crs=dict(doc.get("crs", {})),
        primary_key=tuple(doc.get("primary_key", [])),
        sort_by=tuple(doc.get("sort_by", [])),
        path=path,
    )


def _as_schema(schema: TableSchema | str) -> TableSchema:
    return load_schema(schema) if isinstance(schema, str) else schema


def conform(df: pd.DataFrame, schema: TableSchema | str) -> pd.DataFrame:
    """Return ``df`` with exactly the contract's columns, in order, cast to contract dtypes.

    Missing columns raise :class:`ContractError` (naming them); extra columns are dropped.
    """
    sch = _as_schema(schema)
    missing = [c for c in sch.columns if c not in df.columns]
    if missing:
        raise ContractError(
            f"table {sch.name!r} is missing contract columns {missing} "
            f"({sch.path}); the producing step is out of date with its schema"
        )
    out = {}
    for f in sch.fields:
        out[f.name] = _cast(df[f.name], f)
    return pd.DataFrame(out, index=pd.RangeIndex(len(df)), copy=False)


def _cast(s: pd.Series, f: Field) -> pd.Series:
    s = s.reset_index(drop=True)
    if f.type == "string":
        obj = s.astype(object).where(s.notna(), None)
        if pd.api.types.infer_dtype(obj, skipna=True) in ("string", "empty"):
            return obj
        return obj.map(lambda v: v if v is None or isinstance(v, str) else str(v))
    if f.type in ("int32", "int64"):
        if s.isna().any():
            return s.astype("Int32" if f.type == "int32" else "Int64")
        return s.astype(np.int32 if f.type == "int32" else np.int64)
    if f.type == "float64":
        return pd.to_numeric(s, errors="raise").astype(np.float64)
    if f.type == "bool":
        return s.astype(bool) if not s.isna().any() else s.astype("boolean")
    if f.type == "date":
        return pd.to_datetime(s).astype("datetime64[s]").dt.normalize()
    if f.type == "timestamp":
        return pd.to_datetime(s).astype("datetime64[us]")
    if f.type == "wkb":
        return s.astype(object)
    return s


def validate_frame(
    df: pd.DataFrame, schema: TableSchema | str, *, raise_: bool = True
) -> list[str]:
    """Check a frame against its contract; return (or raise with) every problem found.

    Checks column names and order, dtypes, nullability, ranges, enums, patterns, geometry
    blobs and primary-key uniqueness.
    """
    sch = _as_schema(schema)
    problems: list[str] = []
    cols = list(df.columns)
    if cols != sch.columns:
        missing = [c for c in sch.columns if c not in cols]
        extra = [c for c in cols if c not in sch.columns]
        if missing:
            problems.append(f"missing columns: {missing}")
        if extra:
            problems.append(f"columns not in the contract: {extra}")
        if not missing and not extra:
            problems.append(f"column order differs: got {cols}, contract {sch.columns}")
    for f in sch.fields:
        if f.name not in df.columns:
            continue
        problems.extend(_check_field(df[f.name], f))
    problems.extend(_check_analysis_xy(df, sch))
    key = _key_problem(df, sch)
    if key:
        problems.append(key)
    if problems and raise_:
        raise _violation(sch, problems)
    return problems


def _violation(sch: TableSchema, problems: list[str]) -> ContractError:
    return ContractError(
        f"table {sch.name!r} violates its contract {sch.layer}/{sch.name} v{sch.version}",
        problems,
    )


def _key_problem(df: pd.DataFrame, sch: TableSchema) -> str | None:
    """The primary key's duplicates in ``df``, said with examples (None when unique)."""
    keys = list(sch.primary_key)
    if not keys or not all(k in df.columns for k in keys):
        return None
    dup = df.duplicated(keys, keep=False)
    if not dup.any():
        return None
    ex = df.loc[dup, keys].head(_MAX_EXAMPLES).to_dict("records")
    return f"primary key {keys} not unique: {int(dup.sum())} rows, e.g. {ex}"


def conform_chunks(
    df: pd.DataFrame, schema: TableSchema | str, rows: int = 200_000
) -> Iterator[pd.DataFrame]:
    """:func:`conform` a block of ``rows`` rows at a time, for a store write that holds one
    conformed block, not a conformed copy of the whole table, besides ``df``.

    The primary key is checked on the whole of ``df`` first (a check per block would miss
    a key repeated in two blocks); every block is then validated as it is written. An
    empty ``df`` gives one empty block.
    """
    sch = _as_schema(schema)
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    key = _key_problem(df, sch)
    if key:
        raise _violation(sch, [key])
    for start in range(0, max(len(df), 1), rows):
        yield conform(df.iloc[start : start + rows], sch)


def _examples(s: pd.Series, mask: pd.Series | np.ndarray) -> str:
    vals = s[np.asarray(mask)].head(_MAX_EXAMPLES).tolist()
    return ", ".join(repr(v) for v in vals)


def _dtype_ok(s: pd.Series, f: Field) -> bool:
    dt = s.dtype
    if f.type == "string":
        return pd.api.types.is_string_dtype(dt) or pd.api.types.is_object_dtype(dt)
    if f.type == "int32":
        return str(dt) in ("int32", "Int32")
    if f.type == "int64":
        return str(dt) in ("int64", "Int64")
    if f.type == "float64":
        return str(dt) == "float64"
    if f.type == "bool":
        return str(dt) in ("bool", "boolean")
    if f.type in ("date", "timestamp"):
        return pd.api.types.is_datetime64_any_dtype(dt)
    if f.type == "wkb":
        return pd.api.types.is_object_dtype(dt)
    return True


def _check_analysis_xy(df: pd.DataFrame, sch: TableSchema) -> list[str]:
    """``x``/``y`` columns in the analysis CRS lie within its area of use (half a width of slack).

    Skipped when no analysis CRS is in force or the CRS declares no area of use.
    """
    crs = current_crs()
    bounds = area_of_use_bounds(crs) if crs else None
    if crs is None or bounds is None:
        return []
    minx, miny, maxx, maxy = bounds
    pad_x, pad_y = 0.5 * (maxx - minx), 0.5 * (maxy - miny)
    limits = {"x": (minx - pad_x, maxx + pad_x), "y": (miny - pad_y, maxy + pad_y)}
    out: list[str] = []
    for col, (lo, hi) in limits.items():
        if sch.crs.get(col) != "analysis" or col not in df.columns:
            continue
        vals = pd.to_numeric(df[col], errors="coerce")
        bad = (vals < lo) | (vals > hi)
        if bad.any():
            out.append(
                f"{col}: values outside the area of use of the analysis CRS {crs_name(crs)} "
                f"({lo:,.0f}..{hi:,.0f} m): {_examples(vals, bad)}"
            )
    return out


def _check_field(s: pd.Series, f: Field) -> list[str]:
    out: list[str] = []
    if not _dtype_ok(s, f):
        return [f"{f.name}: dtype {s.dtype} is not {f.type}"]
    na = s.isna()
    if not f.nullable and na.any():
        out.append(f"{f.name}: {int(na.sum())} null values in a non-nullable column")
    vals = s[~na]
    if vals.empty:
        return out
    if f.type == "string" and pd.api.types.infer_dtype(vals, skipna=True) != "string":
        bad = vals.map(lambda v: not isinstance(v, str))
        out.append(f"{f.name}: non-string values: {_examples(vals, bad)}")
        return out
    if f.type == "wkb":
        if pd.api.types.infer_dtype(vals, skipna=True) != "bytes":
            out.append(f"{f.name}: values are not WKB blobs (bytes)")
            return out
        short = vals.str.len() < 5
        if short.any():
            out.append(f"{f.name}: {int(short.sum())} values are not WKB blobs")
    lo, hi = f.minimum, f.maximum
    if f.type in ("date", "timestamp"):
        lo = pd.Timestamp(lo) if lo is not None else None
        hi = pd.Timestamp(hi) if hi is not None else None
    if f.type in ("int32", "int64", "float64", "date", "timestamp"):
        if f.type == "float64":
            nonfinite = ~np.isfinite(vals.to_numpy(dtype=float))
            if nonfinite.any():
                out.append(f"{f.name}: {int(nonfinite.sum())} non-finite values")
        if lo is not None and (vals < lo).any():
            out.append(f"{f.name}: values below minimum {f.minimum}: {_examples(vals, vals < lo)}")
        if hi is not None and (vals > hi).any():
            out.append(f"{f.name}: values above maximum {f.maximum}: {_examples(vals, vals > hi)}")
    if f.enum is not None:
        bad = ~vals.isin(list(f.enum))
        if bad.any():
            out.append(f"{f.name}: values outside the allowed set: {_examples(vals, bad)}")
    if f.pattern is not None:
        bad = ~vals.astype(str).str.fullmatch(f.pattern).astype(bool)
        if bad.any():
            out.append(f"{f.name}: values not matching {f.pattern!r}: {_examples(vals, bad)}")
    return out
