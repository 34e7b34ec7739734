"""``python -m twmb_geo.cli``: the ``twmb`` command."""

from __future__ import annotations

from . import main

if __name__ == "__main__":  # pragma: no cover
    main(prog_name="twmb")
