"""A quick yes-or-no check of a document against one of nbelastic's own JSON Schemas.

jsonschema takes over a second to import (its format checkers compile grammars when imported),
which a kernel would pay on its first save or restore only to learn that a checkpoint nbelastic
wrote itself is valid. ``conforms`` answers that in microseconds for the keywords the schemas in
``nbelastic/schema`` use, and errs only towards "no": a document it rejects goes to jsonschema,
which has the last word and says why. A keyword it does not know raises UnsupportedSchemaError,
so the schema cannot grow past this check unnoticed.

>>> schema = {"type": "object", "required": ["n"], "properties": {"n": {"minimum": 1}}}
>>> conforms({"n": 2}, schema), conforms({"n": 0}, schema), conforms({}, schema)
(True, False, False)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

# Keywords that say nothing about validity.
_ANNOTATIONS = frozenset({"$schema", "$comment", "$defs", "title", "description"})
_SCALARS = (str, int, float, bool, type(None))


class UnsupportedSchemaError(ValueError):
    """The schema uses a keyword or a form this check does not implement."""


def conforms(document: object, schema: dict | bool) -> bool:
    """True if ``document`` is valid against ``schema``; False if it is not, or may not be."""
    return _conforms(document, schema, schema)


def _conforms(value: object, schema: dict | bool, root: dict) -> bool:
    if isinstance(schema, bool):
        return schema
    for keyword, argument in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        check = _KEYWORDS.get(keyword)
        if check is None:
            raise UnsupportedSchemaError(f"the JSON Schema keyword {keyword!r} is not supported")
        if not check(value, argument, schema, root):
            return False
    return True


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# Stricter than JSON Schema where it is cheaper: 1.0 is no integer here, and NaN fails minimum.
_TYPES: dict[str, Callable[[object], bool]] = {
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "string": lambda value: isinstance(value, str),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "number": _is_number,
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
}


def _type(value, names, schema, root) -> bool:
    names = [names] if isinstance(names, str) else names
    unknown = set(names) - set(_TYPES)
    if unknown:
        raise UnsupportedSchemaError(f"unknown JSON Schema types {sorted(unknown)}")
    return any(_TYPES[name](value) for name in names)


def _same(value: object, constant: object) -> bool:
    """JSON equality for scalars (true is not 1 in JSON)."""
    if not isinstance(constant, _SCALARS):
        raise UnsupportedSchemaError(f"only scalar constants are supported, not {constant!r}")
    return type(value) is type(constant) and value == constant


def _const(value, constant, schema, root) -> bool:
    return _same(value, constant)


def _enum(value, options, schema, root) -> bool:
    return any(_same(value, option) for option in options)


def _min_length(value, length, schema, root) -> bool:
    return not isinstance(value, str) or len(value) >= length


@cache
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def _pattern(value, pattern, schema, root) -> bool:
    return not isinstance(value, str) or _compiled(pattern).search(value) is not None


def _minimum(value, bound, schema, root) -> bool:
    return not _is_number(value) or value >= bound


def _maximum(value, bound, schema, root) -> bool:
    return not _is_number(value) or value <= bound


def _exclusive_minimum(value, bound, schema, root) -> bool:
    return not _is_number(value) or value > bound


def _properties(value, properties, schema, root) -> bool:
    if not isinstance(value, dict):
        return True
    checked = ((value[name], sub) for name, sub in properties.items() if name in value)
    return all(_conforms(item, sub, root) for item, sub in checked)


def _required(value, names, schema, root) -> bool:
    return not isinstance(value, dict) or all(name in value for name in names)


def _additional_properties(value, sub, schema, root) -> bool:
    if not isinstance(value, dict):
        return True
    known = schema.get("properties", {})
    return all(_conforms(item, sub, root) for name, item in value.items() if name not in known)


def _property_names(value, sub, schema, root) -> bool:
    return not isinstance(value, dict) or all(_conforms(name, sub, root) for name in value)


def _items(value, sub, schema, root) -> bool:
    return not isinstance(value, list) or all(_conforms(item, sub, root) for item in value)


def _ref(value, reference, schema, root) -> bool:
    prefix = "#/$defs/"
    if not reference.startswith(prefix) or "/" in reference[len(prefix) :]:
        raise UnsupportedSchemaError(f"only references to #/$defs/NAME are supported: {reference}")
    return _conforms(value, root["$defs"][reference[len(prefix) :]], root)


_KEYWORDS: dict[str, Callable[[object, object, dict, dict], bool]] = {
    "type": _type,
    "const": _const,
    "enum": _enum,
    "minLength": _min_length,
    "pattern": _pattern,
    "minimum": _minimum,
    "maximum": _maximum,
    "exclusiveMinimum": _exclusive_minimum,
    "properties": _properties,
    "required": _required,
    "additionalProperties": _additional_properties,
    "propertyNames": _property_names,
    "items": _items,
    "$ref": _ref,
}
