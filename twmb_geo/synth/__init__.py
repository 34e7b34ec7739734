"""Synthetic city generator: a realistic, seeded Toronto-like city with known break hazard.

Real per-pipe and street data are not bundled, so tests, demos and benchmarks use a
generated city placed on Toronto's real footprint (the bundled neighbourhoods) and
calibrated to the City's published watermain figures::

    from twmb_geo.synth import make_city, write_city
    city = make_city(n_pipes=2000, seed=7)       # SynthCity, all in EPSG:2952
    paths = write_city(city, "out/synthetic")    # City formats + truth + twmb.toml

See ``docs/synthetic-city.md`` for the street and pipe model and the hazard formula.
"""

from .city import SynthCity, make_city
from .params import SynthParams
from .writer import write_city

__all__ = ["SynthCity", "SynthParams", "make_city", "write_city"]
