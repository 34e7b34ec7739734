"""Shared vocabularies: risk tiers, hot-spot classes and material codes.

Each list is defined here once; the model, the maps, the report, the star schema and the
Power BI kit read it.
"""

from __future__ import annotations

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

#: Material code -> meaning, from the City of Toronto's watermains codebook
#: (``data/toronto/watermains_codebook.csv``), the default codebook. ``CP`` occurs in the
#: City's files but the codebook gives it no meaning, so its description is null.
MATERIALS: Final[dict[str, str | None]] = {
    "AC": "Asbestos Cement",
    "CI": "Cast Iron",
    "CICL": "Cast Iron, Cement Lined",
    "COP": "Copper",
    "CP": None,
    "CPP": "Concrete Pressure Pipe",
    "CONC": "Concrete",
    "CONP": "Concrete Pipe",
    "DICL": "Ductile Iron, Cement Lined",
    "DIP": "Ductile Iron Pipe",
    "HDPE": "High-Density Polyethylene",
    "PE": "Polyethylene",
    "PCPP": "Prestressed Concrete Cylinder Pipe",
    "PVC": "Polyvinyl Chloride",
    "PVCO": "Oriented PVC",
    "SP": "Steel Pipe",
    "SPCL": "Steel Pipe, Cement Lined",
}
#: Codes that mean "no material" (they become a null material).
MISSING_MATERIAL_CODES: Final[tuple[str, ...]] = ("UNK", "NONE", "NULL", "")
#: Canonical material classes: class -> the material codes in it.
MATERIAL_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "ci": ("CI", "CICL"),
    "di": ("DIP", "DICL"),
    "pvc": ("PVC", "PVCO", "PE", "HDPE"),
    "ac": ("AC",),
    "steel": ("SP", "SPCL"),
    "concrete": ("CPP", "PCPP", "CONC", "CONP", "CP"),
}
#: Cement-lined materials.
LINED_MATERIALS: Final[frozenset[str]] = frozenset({"CICL", "DICL", "SPCL"})


def material_description(code: str | None) -> str | None:
    """The codebook meaning of a material code (``Unknown`` for ``UNK``, else the code)."""
    if code is None:
        return None
    return MATERIALS.get(code) or ("Unknown" if code == "UNK" else code)
