"""The unit-type registry: one spec per unit type, read by every layer that loops over them.

A unit is anything a break can be linked to and a risk can be scored for: a pipe, a street
segment, an H3 cell, a neighbourhood. Config validation, the feature stage, the models, the
maps, the report, the star schema and the CLI loop over :data:`UNIT_TYPES` instead of naming
the types. How a unit table is built from the curated tables and how breaks link to it is
the spatial layer's part (``twmb_geo.spatial.units``), registered under the same name.

Adding a unit type (a pressure zone, a district metered area, ...) is a spec registered with
:func:`register_unit_type`, its builder registered in the spatial layer, and its contracts
(``schemas/store/unit_<name>.json``, a star dimension); see ``docs/architecture.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "UNIT_TYPES",
    "UnitType",
    "register_unit_type",
    "unit_type",
    "unit_type_names",
]


@dataclass(frozen=True)
class UnitType:
    """What the rest of the package needs to know about one unit type.

    Parameters
    ----------
    name
        The ``unit_type`` value in every table (``"pipe"``).
    table
        The store table of the units built by the feature stage (``"unit_pipe"``).
    layer
        The map layer name (``"pipes"``).
    layer_table
        The store table the map layer and the report read the units from (``"unit_pipe"``;
        ``"neighbourhoods"``: the curated polygons with their names).
    label, plural
        Words for people (``"pipe"``, ``"pipes"``).
    linear
        True when the exposure is a length: tiers, capture and renewal are weighted by
        :attr:`weight_column` and reported in km.
    weight_column
        The model-data column that weights capture and tiers (``"length_km"``) or None.
    star_dimension, star_key, star_natural_key
        The Power BI dimension, its surrogate key column in the facts, and the dimension
        column that holds the unit's id.
    modelled
        Whether the model stage trains a model for it by default.
    source_kind
        The curated source kind the units are built from (``"pipes"``), None when they
        are derived (H3 cells cover the service area).
    located_in
        ``(unit type, column)`` pairs: the column of :attr:`table` that holds the id of the
        unit of another type this unit lies in (a pipe's street segment, H3 cell and
        neighbourhood). The star gives every fact row of this type those units' keys, so
        a slicer on any of their dimensions filters it; other types are "not applicable".
    """

    name: str
    table: str
    layer: str
    layer_table: str
    label: str
    plural: str
    linear: bool
    weight_column: str | None
    star_dimension: str
    star_key: str
    star_natural_key: str
    modelled: bool = True
    source_kind: str | None = None
    located_in: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or not self.name.islower():
            raise ValueError(f"unit type name {self.name!r} must be a lower-case identifier")
        if self.linear != (self.weight_column is not None):
            raise ValueError(f"unit type {self.name!r}: a linear unit type needs a weight column")


#: The registry, in the canonical order (links, tables and reports follow it).
UNIT_TYPES: dict[str, UnitType] = {}


def register_unit_type(spec: UnitType) -> UnitType:
    """Add ``spec`` to the registry (a name can be registered once)."""
    if spec.name in UNIT_TYPES:
        raise ValueError(f"unit type {spec.name!r} is already registered")
    UNIT_TYPES[spec.name] = spec
    return spec


def unit_type(name: str) -> UnitType:
    """The spec of ``name``; a ValueError lists the known types."""
    try:
        return UNIT_TYPES[name]
    except KeyError:
        known = ", ".join(UNIT_TYPES)
        raise ValueError(f"unknown unit type {name!r} (known: {known})") from None


def unit_type_names(*, modelled: bool | None = None) -> tuple[str, ...]:
    """Registered names in canonical order (only the modelled ones with ``modelled=True``)."""
    return tuple(n for n, s in UNIT_TYPES.items() if modelled is None or s.modelled == modelled)


register_unit_type(
    UnitType(
        name="pipe",
        table="unit_pipe",
        layer="pipes",
        layer_table="unit_pipe",
        label="pipe",
        plural="pipes",
        linear=True,
        weight_column="length_km",
        star_dimension="dim_pipe",
        star_key="pipe_key",
        star_natural_key="unit_id",
        source_kind="pipes",
        located_in=(("street", "segment_id"), ("cell", "cell"), ("neighbourhood", "neighbourhood")),
    )
)
register_unit_type(
    UnitType(
        name="street",
        table="unit_street",
        layer="streets",
        layer_table="unit_street",
        label="street segment",
        plural="street segments",
        linear=True,
        weight_column="length_km",
        star_dimension="dim_street_segment",
        star_key="street_key",
        star_natural_key="unit_id",
        source_kind="streets",
        located_in=(("cell", "cell"), ("neighbourhood", "neighbourhood")),
    )
)
register_unit_type(
    UnitType(
        name="cell",
        table="unit_cell",
        layer="cells",
        layer_table="unit_cell",
        label="H3 cell",
        plural="H3 cells",
        linear=False,
        weight_column=None,
        star_dimension="dim_h3_cell",
        star_key="cell_key",
        star_natural_key="h3_index",
        located_in=(("neighbourhood", "neighbourhood"),),
    )
)
register_unit_type(
    UnitType(
        name="neighbourhood",
        table="unit_neighbourhood",
        layer="neighbourhoods",
        layer_table="neighbourhoods",
        label="neighbourhood",
        plural="neighbourhoods",
        linear=False,
        weight_column=None,
        star_dimension="dim_neighbourhood",
        star_key="neighbourhood_key",
        star_natural_key="neighbourhood_code",
        modelled=False,
        source_kind="neighbourhoods",
    )
)
