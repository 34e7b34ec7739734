"""The Power BI kit: Power Query (M) scripts and a PBIP semantic model (TMDL) for the star schema.

Everything is generated from the star contracts (``schemas/star/*.json``) alone, so the kit
needs no store and cannot drift from what ``twmb publish`` writes:

* ``powerquery/turso/<table>.pq`` pages through a table of the Turso (libSQL) database over
  HTTP (``POST <TursoUrl>/v2/pipeline``) with exactly the query of
  :func:`twmb_geo.publish.sql.reader_sql` (``paged=True``) and applies the contract's column
  types; the shared request, paging and value decoding live in
  ``powerquery/turso/TursoTable.pq``, which first reads the current publish id
  (:data:`~twmb_geo.publish.sql.CURRENT_SQL`) and binds it to every page;
* ``powerquery/parquet/<table>.pq`` reads ``<StarFolder>\\parquet\\<table>.parquet`` instead;
* ``powerquery/parameters.pq`` declares the parameters ``TursoUrl``, ``TursoToken`` (sensitive:
  the files only ever hold an empty placeholder) and ``StarFolder``;
* ``TWMB.SemanticModel/`` is the semantic model in TMDL: one table per star table (contract
  columns, types and descriptions), many-to-one single-direction relationships from every fact
  key column to its dimension (:data:`~twmb_geo.publish.star.KEY_DIMENSIONS`), ``dim_date``
  marked as the date table and the DAX measures of :data:`MEASURES` in a ``_Measures`` table;
* ``TWMB.pbip`` and the starter report ``TWMB.Report/`` (PBIR, :mod:`.report`): map, trend,
  ranking and model pages with neighbourhood and year slicers, every field checked against
  the model before writing.

The output is deterministic: the same contracts give byte-identical files (stable order, ``\\n``
line endings, lineage tags derived from names). The report is only written when the folder
has none (or with ``replace_report=True``), so edits made in Power BI Desktop survive a
regeneration.

Modules: :mod:`.common` (names, types, contract checks), :mod:`.measures` (DAX),
:mod:`.m_query` (Power Query M), :mod:`.tmdl` (the PBIP project and model), :mod:`.report`
(the starter report) and :mod:`.writer` (the README and the files).
"""

from __future__ import annotations

from .common import M_TYPES, MEASURES_TABLE, MODEL_NAME, PAGE_SIZE, SOURCES, TMDL_TYPES
from .measures import Measure, kit_measures, measure_references
from .writer import write_powerbi_kit

__all__ = [
    "MEASURES_TABLE",
    "MODEL_NAME",
    "M_TYPES",
    "PAGE_SIZE",
    "SOURCES",
    "TMDL_TYPES",
    "Measure",
    "kit_measures",
    "measure_references",
    "write_powerbi_kit",
]
