"""JSON Schema validation of the TOML files a user writes (project config, source profiles).

Both files are checked against a Draft 2020-12 schema shipped with the package; this module
holds what the two share: a validator whose type checker refuses booleans as numbers and
non-finite floats, the ``enumFrom`` registry fill, and messages built from the schema's
``errorMessage`` templates, every error of a document collected (``iter_errors``), not
only the first.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators

__all__ = [
    "StrictValidator",
    "fill_enums",
    "is_integer",
    "is_number",
    "plain",
    "schema_problems",
]


def is_integer(_checker: Any, value: Any) -> bool:
    """JSON Schema ``integer``: a Python int that is not a bool (TOML ``true`` is not 1).

    Parameters
    ----------
    _checker : Any
        The type checker (unused; the signature of a jsonschema type check).
    value : Any
        The instance.

    Returns
    -------
    bool
        Whether ``value`` is an integer.
    """
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(_checker: Any, value: Any) -> bool:
    """JSON Schema ``number``: an int or a finite float, never a bool (``inf``/``nan`` refused).

    Parameters
    ----------
    _checker : Any
        The type checker (unused).
    value : Any
        The instance.

    Returns
    -------
    bool
        Whether ``value`` is a number.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)


#: Draft 2020-12 with :func:`is_integer` and :func:`is_number` as the integer and number types
StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": is_integer, "number": is_number}
    ),
)


def fill_enums(node: Any, names: dict[str, list[str]]) -> None:
    """Set ``enum`` on every schema node naming a registry in ``enumFrom`` (in place).

    Parameters
    ----------
    node : Any
        A schema or part of one.
    names : dict of str to list of str
        Registry name -> the allowed values.
    """
    if isinstance(node, dict):
        if "enumFrom" in node:
            node["enum"] = names[node["enumFrom"]]
        for value in node.values():
            fill_enums(value, names)
    elif isinstance(node, list):
        for value in node:
            fill_enums(value, names)


def plain(value: Any) -> Any:
    """``value`` with TOML dates and times as ISO strings, as a JSON Schema sees them.

    Parameters
    ----------
    value : Any
        A parsed TOML document or value.

    Returns
    -------
    Any
        The same structure, dates and times replaced by ``isoformat()`` strings.
    """
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _schema_at(schema: dict[str, Any], path: list[Any]) -> dict[str, Any]:
    """The subschema that applies to the value at ``path`` of a document."""
    node: Any = schema
    for key in path:
        if isinstance(key, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(key, node.get("additionalProperties", {}))
        if not isinstance(node, dict):
            return {}
    return node


def _value_at(doc: Any, path: list[Any]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _message(error: ValidationError, schema: dict[str, Any], doc: Any) -> str:
    """The message of one schema error, from the ``errorMessage`` template of its subschema.

    Template fields: ``value`` (the failing value), ``parent`` (the table or list holding
    it), ``key`` (its key), ``n`` (1-based number of the first list entry on the path),
    ``source`` (``#n (id)`` of that entry), ``unknown``/``allowed``/``names`` (keys of a
    table outside / inside its properties), ``missing`` (required keys absent or empty),
    ``enum``/``choices`` (the allowed values, as a list / comma-separated).
    """
    path = list(error.absolute_path)
    sub = error.schema if isinstance(error.schema, dict) else {}
    template = sub.get("errorMessage")
    if isinstance(template, dict):
        template = template.get(str(error.validator), template.get("default"))
    if not template:
        return f"{'/'.join(map(str, path)) or 'document'}: {error.message}"
    parent = _value_at(doc, path[:-1]) if path else None
    is_obj = isinstance(error.instance, dict)
    obj = error.instance if is_obj else parent if isinstance(parent, dict) else {}
    required = _schema_at(schema, path if is_obj else path[:-1]).get("required", [])
    props = list(sub.get("properties", {}))
    enum = list(sub.get("enum", []))
    n = next((k + 1 for k in path if isinstance(k, int)), 0)
    sid = obj.get("id")
    return str(template).format(
        value=error.instance,
        parent=parent,
        key=next((str(k) for k in reversed(path) if isinstance(k, str)), ""),
        n=n,
        source=f"#{n} ({sid})" if isinstance(sid, str) and sid else f"#{n}",
        unknown=sorted(set(obj) - set(props)),
        allowed=sorted(props),
        names=", ".join(props),
        missing=[k for k in required if obj.get(k) in (None, "")],
        enum=enum,
        choices=", ".join(map(str, enum)),
    )


def _path_key(error: ValidationError) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, k, "") if isinstance(k, int) else (1, 0, str(k)) for k in error.absolute_path)


def schema_problems(doc: Any, schema: dict[str, Any]) -> list[str]:
    """Every error of ``doc`` against ``schema``, sorted by key path, as messages (each once).

    Parameters
    ----------
    doc : Any
        The document, dates already ISO strings (:func:`plain`).
    schema : dict
        A Draft 2020-12 schema whose nodes carry ``errorMessage`` templates (a string, or
        one per failing keyword with an optional ``default``); a node without one gives
        ``<key/path>: <jsonschema message>``.

    Returns
    -------
    list of str
        The messages; empty when ``doc`` is valid.
    """
    validator = StrictValidator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(doc), key=_path_key)
    return list(dict.fromkeys(_message(e, schema, doc) for e in errors))
