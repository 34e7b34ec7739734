"""twmb_geo: Toronto Water Main Break analytics and risk platform."""
from ._version import __version__

__all__ = ["__version__"]
