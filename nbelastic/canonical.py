"""The one text form that signatures and digests over JSON documents are computed on.

A checkpoint lives in a notebook's metadata, and JupyterLab rewrites the notebook on every save
through JavaScript's ``JSON.stringify(JSON.parse(text))``: ``120000000.0`` comes back as
``120000000``, whitespace, escapes and key order change. A signature over the text as Python's
``json.dumps`` writes it then no longer matches, and the user's own checkpoint turns untrusted.

So what is signed is the JSON Canonicalization Scheme (RFC 8785) of the parsed document: keys
sorted by UTF-16 code units, no whitespace, strings escaped as ``JSON.stringify`` escapes them,
and every number written as ECMAScript's ``Number::toString`` writes it. That is exactly what
``JSON.stringify`` gives for the same value, so a JavaScript round trip leaves it unchanged.
One liberty: an integer that no double holds (above 2**53, which the checkpoint schema rules
out) is written exactly instead of refused; a JavaScript reader would change such a value, and
the digest then says so.

``legacy`` is the form nbelastic signed before, kept so that those checkpoints still verify.
"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
_ESCAPES["\t"] = "\\t"
_ESCAPED = re.compile(r'[\x00-\x1f"\\\ud800-\udfff]')


def dumps(value: object) -> str:
    """The canonical text of a JSON value (dicts with str keys, lists, str, int, float, bool,
    None); ValueError for NaN, infinities and anything JSON cannot hold.

    >>> dumps({"b": [1.0, 0.5, 1e21, 1e-7], "a": "é"})
    '{"a":"é","b":[1,0.5,1e+21,1e-7]}'
    """
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def digest(value: object) -> str:
    """sha256 of the canonical text, in hex: the same for a document and its JavaScript round
    trip."""
    return hashlib.sha256(encode(value)).hexdigest()


def encode(value: object) -> bytes:
    """The canonical text as UTF-8 (a lone surrogate is escaped, so every str encodes)."""
    return dumps(value).encode("utf-8")


def legacy(value: object) -> str:
    """The text nbelastic 0.1 signed and digested: Python's sorted, compact ``json.dumps``."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def number(value: int | float) -> str:
    """A number as ECMAScript's Number::toString writes it (integral doubles without ``.0``,
    ``-0`` as ``0``, exponents from 1e21 up and below 1e-6).

    >>> [number(x) for x in (120000000.0, -0.0, 1e21, 123e-9, 5e-324, 0.1, 2**60)]
    ['120000000', '0', '1e+21', '1.23e-7', '5e-324', '0.1', '1152921504606847000']
    """
    if isinstance(value, int):
        try:
            exact = float(value) == value
        except OverflowError:
            exact = False
        if not exact:
            return str(value)
        value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not a JSON number")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr gives the shortest digits that read back as this double, as ECMAScript asks.
    _, digits_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digits_tuple))
    k = len(digits)
    n = int(exponent) + k  # value = 0.digits * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if n > 0 else '-'}{abs(n - 1)}"
    return sign + text


def _write(value: object, parts: list[str]) -> None:
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, str):
        parts.append(_string(value))
    elif isinstance(value, (int, float)):
        parts.append(number(value))
    elif isinstance(value, dict):
        parts.append("{")
        for index, key in enumerate(sorted(value, key=_utf16_order)):
            parts.append("," if index else "")
            parts.append(_string(key) + ":")
            _write(value[key], parts)
        parts.append("}")
    elif isinstance(value, (list, tuple)):
        parts.append("[")
        for index, item in enumerate(value):
            parts.append("," if index else "")
            _write(item, parts)
        parts.append("]")
    else:
        raise ValueError(f"a {type(value).__name__} is not a JSON value")


def _utf16_order(key: object) -> bytes:
    if not isinstance(key, str):
        raise ValueError(f"a JSON object key must be a str, not {type(key).__name__}")
    return key.encode("utf-16-be", "surrogatepass")


def _string(text: str) -> str:
    """``JSON.stringify``'s escaping: quotes, backslash, control characters, lone surrogates."""
    return '"' + _ESCAPED.sub(_escape, text) + '"'


def _escape(match: re.Match) -> str:
    char = match.group()
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"
