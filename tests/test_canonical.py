"""The canonical form survives JavaScript's JSON round trip, which JupyterLab puts every
notebook through on save; where node is installed it is checked against node itself."""

from __future__ import annotations

import json
import math
import random
import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from javascript import needs_node, node, on_stdin, round_trip

from nbelastic.canonical import digest, dumps, legacy, number

# Number::toString, as node v20 prints each of these (checked once by hand, kept for machines
# without node).
NUMBERS = [
    (0.0, "0"),
    (-0.0, "0"),
    (1.0, "1"),
    (120000000.0, "120000000"),
    (560000000.0, "560000000"),
    (1.2e9, "1200000000"),
    (-3.0, "-3"),
    (0.1, "0.1"),
    (0.5, "0.5"),
    (1.5, "1.5"),
    (123.456, "123.456"),
    (5e-06, "0.000005"),
    (1e-6, "0.000001"),
    (1e-7, "1e-7"),
    (1.5e-7, "1.5e-7"),
    (123e-20, "1.23e-18"),
    (1e20, "100000000000000000000"),
    (1e21, "1e+21"),
    (1.5e21, "1.5e+21"),
    (1e16, "10000000000000000"),
    (2.0**53, "9007199254740992"),
    (2.0**60, "1152921504606847000"),
    (5e-324, "5e-324"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
    (0.30000000000000004, "0.30000000000000004"),
    (1 / 3, "0.3333333333333333"),
    (9007199254740991, "9007199254740991"),
    (2**60, "1152921504606847000"),
    (2**64 + 1, "18446744073709551617"),
    (-12, "-12"),
]


@pytest.mark.parametrize(("value", "text"), NUMBERS)
def test_numbers_are_written_as_javascript_writes_them(value, text):
    assert number(value) == text


@needs_node
def test_number_formatting_agrees_with_node_on_thousands_of_doubles():
    rng = random.Random(13)
    values = [value for value, _ in NUMBERS]
    values += [struct.unpack("<d", rng.randbytes(8))[0] for _ in range(3000)]
    values += [rng.uniform(-1e6, 1e6) for _ in range(500)]
    values += [10.0**e * rng.choice((1, 1.5, 7.25)) for e in range(-330, 309)]
    values += [float(rng.randrange(-(2**62), 2**62)) for _ in range(200)]
    values = [value for value in values if math.isfinite(value)]
    printed = node(
        on_stdin("JSON.parse(t).map(x=>JSON.stringify(x)).join('\\n')"),
        json.dumps([float(value) for value in values]),
    )
    assert [number(float(value)) for value in values] == printed.split("\n")


def test_an_integral_float_and_its_int_have_one_form():
    assert dumps({"bandwidth": 120000000.0}) == dumps({"bandwidth": 120000000})


def test_keys_are_sorted_by_utf16_code_units_as_rfc_8785_says():
    assert dumps({"\U0001f600": 1, "\ufb01": 2, "a": 3}) == '{"a":3,"\U0001f600":1,"\ufb01":2}'


def test_strings_are_escaped_as_json_stringify_escapes_them():
    text = 'q"b\\n\n\t\x01\x7f\u2028é\ud800'
    assert dumps(text) == '"q\\"b\\\\n\\n\\t\\u0001\x7f\u2028é\\ud800"'


def test_non_finite_numbers_are_refused():
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


# Integer-like keys come first in a JavaScript object, astral characters sort apart by UTF-16.
AWKWARD = {"10": 1.0, "9": [0.5, 1e21, -0.0], "\U0001f600": "\u2028", "\ufb01": 120000000.0}


@needs_node
@settings(max_examples=40, deadline=None)
@given(JSON_VALUES)
@example(AWKWARD)
def test_the_digest_survives_a_javascript_round_trip(value):
    saved = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)
    assert digest(json.loads(round_trip(saved))) == digest(value)


@needs_node
@settings(max_examples=40, deadline=None)
@given(JSON_VALUES)
@example(AWKWARD)
def test_the_canonical_text_is_what_javascript_writes_with_sorted_keys(value):
    script = (
        "const c=v=>Array.isArray(v)?'['+v.map(c).join(',')+']':v&&typeof v==='object'?"
        "'{'+Object.keys(v).sort().map(k=>JSON.stringify(k)+':'+c(v[k])).join(',')+'}'"
        ":JSON.stringify(v);"
    )
    written = node(script + on_stdin("c(JSON.parse(t))"), json.dumps(value, ensure_ascii=False))
    assert written == dumps(value)


def test_the_legacy_form_is_what_nbelastic_0_1_signed():
    assert legacy({"b": 1.0, "a": "é"}) == '{"a":"é","b":1.0}'
