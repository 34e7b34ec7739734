"""Validate the PBIP/PBIR JSON files of a kit against Microsoft's published JSON schemas.

The schemas are not redistributed with twmb_geo: point ``TWMB_PBIR_SCHEMAS`` at a folder laid
out like https://developer.microsoft.com/json-schemas/ (a clone of
github.com/microsoft/json-schemas: ``<folder>/fabric/item/report/...``). Every file's
``$schema`` URL, and every ``$ref`` inside the schemas, is resolved inside that folder; a
schema that is missing there is reported, never fetched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unretrievable
from referencing.jsonschema import DRAFT7

SCHEMA_ROOT_URL = "https://developer.microsoft.com/json-schemas/"
ENV = "TWMB_PBIR_SCHEMAS"
#: generated JSON files that declare a ``$schema`` (the TMDL and M files are checked elsewhere)
JSON_SUFFIXES = (".json", ".pbir", ".pbism", ".pbip")


def schema_folder() -> Path | None:
    value = os.environ.get(ENV, "")
    return Path(value) if value else None


def _registry(folder: Path) -> Registry:
    def retrieve(uri: str) -> Resource:
        if not uri.startswith(SCHEMA_ROOT_URL):
            raise NoSuchResource(ref=uri)
        path = folder / uri[len(SCHEMA_ROOT_URL) :].split("#")[0]
        if not path.is_file():
            raise NoSuchResource(ref=uri)
        contents = json.loads(path.read_text(encoding="utf-8-sig"))
        return Resource.from_contents(contents, default_specification=DRAFT7)

    return Registry(retrieve=retrieve)  # type: ignore[call-arg]


def validate_kit(kit: Path, folder: Path) -> tuple[int, list[str]]:
    """``(files validated, problems)`` for every JSON file of ``kit`` against its ``$schema``."""
    registry = _registry(folder)
    problems: list[str] = []
    n = 0
    for path in sorted(p for p in kit.rglob("*") if p.suffix in JSON_SUFFIXES and p.is_file()):
        rel = path.relative_to(kit).as_posix()
        doc = json.loads(path.read_text(encoding="utf-8"))
        url = doc.get("$schema") if isinstance(doc, dict) else None
        if not url:
            problems.append(f"{rel}: no $schema")
            continue
        try:
            schema = registry.get_or_retrieve(url).value.contents
        except (NoSuchResource, Unretrievable) as exc:
            problems.append(f"{rel}: schema {url} not found under {folder} ({exc})")
            continue
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
        validator = cls(schema, registry=registry)
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in err.absolute_path) or "(root)"
            problems.append(f"{rel}: {where}: {err.message[:300]}")
        n += 1
    return n, problems


if __name__ == "__main__":
    import sys

    kit_dir, schemas_dir = Path(sys.argv[1]), Path(sys.argv[2])
    count, found = validate_kit(kit_dir, schemas_dir)
    print(f"{count} files validated, {len(found)} problems")
    for line in found:
        print(line)
    sys.exit(1 if found else 0)
