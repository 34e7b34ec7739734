"""The City of Toronto Open Data portal and the packages fetched from it."""

from __future__ import annotations

from typing import Final

from twmb_geo.io.ckan.catalogue import PackageSpec

TORONTO_CKAN_URL: Final[str] = "https://ckan0.cf.opendata.inter.prod-toronto.ca"
"""Base URL of the City of Toronto Open Data CKAN instance."""


_DATA_FORMATS: Final = ("zip", "xlsx", "xls", "csv", "geojson", "json", "gpkg", "shp")
_GEO_FORMATS: Final = ("geojson", "gpkg", "shp", "zip", "json", "csv")
_DOC_PATTERNS: Final = (
    "*readme*",
    "*read me*",
    "*documentation*",
    "*data dictionary*",
    "*metadata*",
)

TORONTO_PACKAGES: Final[dict[str, PackageSpec]] = {
    "watermain-breaks": PackageSpec(
        slug="watermain-breaks",
        resources=("*",),
        exclude=_DOC_PATTERNS,
        formats=_DATA_FORMATS,
        epsg=(4326, 2952),
        one_per_name=False,
    ),
    "watermains": PackageSpec(
        slug="watermains",
        resources=("Distribution Watermain", "Transmission Watermain"),
        exclude=_DOC_PATTERNS,
        formats=_GEO_FORMATS,
        epsg=(4326, 2952),
        one_per_name=True,
    ),
    "toronto-centreline-tcl": PackageSpec(
        slug="toronto-centreline-tcl",
        resources=("Centreline - Version 2",),
        exclude=_DOC_PATTERNS,
        formats=_GEO_FORMATS,
        epsg=(4326, 2952),
        one_per_name=True,
    ),
    "neighbourhoods": PackageSpec(
        slug="neighbourhoods",
        resources=("Neighbourhoods", "Neighbourhoods - historical 140"),
        exclude=_DOC_PATTERNS,
        formats=_GEO_FORMATS,
        epsg=(4326, 2952),
        one_per_name=True,
    ),
}
"""Default Toronto packages and what to take from each."""
