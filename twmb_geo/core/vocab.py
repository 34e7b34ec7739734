"""Shared vocabularies: risk tiers, hot-spot classes and material classes.

Each list is defined here once; the model, the maps, the report, the star schema and the
Power BI kit read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: Default risk tiers: name and minimum risk percentile (share of the network less risky).
DEFAULT_TIERS: Final[tuple[tuple[str, float], ...]] = (
    ("very_high", 99.0),
    ("high", 95.0),
    ("elevated", 80.0),
    ("low", 0.0),
)
#: The tier of a unit without a current score.
UNSCORED: Final = "unscored"
#: Risk tiers from the riskiest, then ``unscored``.
TIER_ORDER: Final[tuple[str, ...]] = (*(name for name, _ in DEFAULT_TIERS), UNSCORED)

#: LISA quadrant (esda numbering) -> cluster label when significant.
QUADRANT_LABELS: Final[dict[int, str]] = {
    1: "hot spot",
    2: "low outlier",
    3: "cold spot",
    4: "high outlier",
}
#: Every LISA cluster label.
CLUSTER_LABELS: Final[tuple[str, ...]] = (
    "hot spot",
    "cold spot",
    "high outlier",
    "low outlier",
    "not significant",
    "island",
)
#: Hot-spot persistence classes in order of precedence (the first rule that matches wins).
PERSISTENCE_CLASSES: Final[tuple[str, ...]] = (
    "not assessed",
    "persistent hot spot",
    "emerging hot spot",
    "intermittent hot spot",
    "transient hot spot",
    "persistent cold spot",
    "other significant",
    "never significant",
)
#: The class of a unit whose hot-spot persistence was not computed.
NOT_COMPUTED: Final = "not computed"
#: Hot-spot persistence classes in legend order (hot to cold, then the unassessed).
HOTSPOT_ORDER: Final[tuple[str, ...]] = (
    *PERSISTENCE_CLASSES[1:],
    PERSISTENCE_CLASSES[0],
    NOT_COMPUTED,
)

#: Canonical material classes -> label. A source profile's ``[materials]`` table maps the
#: publisher's codes to these; features and the model use the class, never the code.
MATERIAL_CLASSES: Final[dict[str, str]] = {
    "cast_iron": "Cast iron",
    "ductile_iron": "Ductile iron",
    "pvc": "PVC",
    "asbestos_cement": "Asbestos cement",
    "steel": "Steel",
    "concrete": "Concrete",
    "copper": "Copper",
    "hdpe": "HDPE / polyethylene",
    "other": "Other",
    "unknown": "Unknown",
}
#: The class of a missing, unknown or unmapped material.
UNKNOWN_MATERIAL: Final = "unknown"


@dataclass(frozen=True)
class MaterialCode:
    """What one published material code means: canonical class, label, cement lining.

    ``label`` ``None`` means "use the class label"; ``""`` means the publisher gives the
    code no meaning (the curated ``material_desc`` is then null).
    """

    material_class: str
    label: str | None = None
    lined: bool = False


#: Built-in mapping of common North American material codes (used for every profile;
#: a profile's ``[materials]`` entries add to it and override it). Keys are normalised
#: codes (upper case, single spaces); see ``docs/profiles.md``.
DEFAULT_MATERIALS: Final[dict[str, MaterialCode]] = {
    "CI": MaterialCode("cast_iron", "Cast Iron"),
    "CIP": MaterialCode("cast_iron", "Cast Iron Pipe"),
    "CICL": MaterialCode("cast_iron", "Cast Iron, Cement Lined", lined=True),
    "DI": MaterialCode("ductile_iron", "Ductile Iron"),
    "DIP": MaterialCode("ductile_iron", "Ductile Iron Pipe"),
    "YDI": MaterialCode("ductile_iron", "Ductile Iron (YDI)"),
    "DICL": MaterialCode("ductile_iron", "Ductile Iron, Cement Lined", lined=True),
    "PVC": MaterialCode("pvc", "Polyvinyl Chloride"),
    "PVC C900": MaterialCode("pvc", "PVC (AWWA C900)"),
    "PVC C905": MaterialCode("pvc", "PVC (AWWA C905)"),
    "C900": MaterialCode("pvc", "PVC (AWWA C900)"),
    "C905": MaterialCode("pvc", "PVC (AWWA C905)"),
    "PVCO": MaterialCode("pvc", "Oriented PVC"),
    "AC": MaterialCode("asbestos_cement", "Asbestos Cement"),
    "ACP": MaterialCode("asbestos_cement", "Asbestos Cement Pipe"),
    "TRANS": MaterialCode("asbestos_cement", "Transite (Asbestos Cement)"),
    "STL": MaterialCode("steel", "Steel"),
    "ST": MaterialCode("steel", "Steel"),
    "STEEL": MaterialCode("steel", "Steel"),
    "SP": MaterialCode("steel", "Steel Pipe"),
    "SPCL": MaterialCode("steel", "Steel Pipe, Cement Lined", lined=True),
    "CON": MaterialCode("concrete", "Concrete"),
    "CONC": MaterialCode("concrete", "Concrete"),
    "PCCP": MaterialCode("concrete", "Prestressed Concrete Cylinder Pipe"),
    "RCP": MaterialCode("concrete", "Reinforced Concrete Pipe"),
    "CU": MaterialCode("copper", "Copper"),
    "COP": MaterialCode("copper", "Copper"),
    "COPPER": MaterialCode("copper", "Copper"),
    "HDPE": MaterialCode("hdpe", "High-Density Polyethylene"),
    "PE": MaterialCode("hdpe", "Polyethylene"),
    "UNK": MaterialCode("unknown", "Unknown"),
    "UNKNOWN": MaterialCode("unknown", "Unknown"),
    "NONE": MaterialCode("unknown", "Unknown"),
    "NULL": MaterialCode("unknown", "Unknown"),
}
#: Model feature groups over canonical classes: ``mat_<group>`` one-hots on pipes,
#: ``share_<group>`` / ``pipe_km_<group>`` on cells; any other class counts as ``other``.
MATERIAL_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "ci": ("cast_iron",),
    "di": ("ductile_iron",),
    "pvc": ("pvc", "hdpe"),
    "ac": ("asbestos_cement",),
    "steel": ("steel",),
    "concrete": ("concrete",),
}


def normalise_material_code(code: object) -> str | None:
    """A material code as matched against ``[materials]``: trimmed, upper case, single spaces."""
    if code is None or (isinstance(code, float) and code != code):
        return None
    return " ".join(str(code).split()).upper()


def material_label(material_class: str | None) -> str | None:
    """The label of a canonical material class (``None`` for ``None``)."""
    if material_class is None:
        return None
    return MATERIAL_CLASSES.get(material_class, material_class)
