"""The quick schema check never accepts what jsonschema rejects, and accepts what nbelastic writes.

jsonschema stays the judge (see nbelastic.schema_check); the quick check only spares its import
when a checkpoint is valid, so it must never say yes where jsonschema says no.
"""

from __future__ import annotations

import copy
import json
from importlib import resources

import jsonschema
import pytest
from hypothesis import given
from test_fuzz_readers import SETTINGS, json_values, mutated_documents, valid_document

from nbelastic.schema_check import UnsupportedSchemaError, conforms
from nbelastic.trust import sign

SCHEMA = json.loads(
    (resources.files("nbelastic") / "schema" / "checkpoint-1.json").read_text("utf-8")
)
JUDGE = jsonschema.Draft202012Validator(SCHEMA)


def signed_with_an_id() -> dict:
    document = valid_document()
    document["variables"]["y"]["hash"] = None
    document["history"]["executions"][0]["rng"] = "cd" * 32
    return sign({**document, "checkpoint": "3-0123456789ab"})


@pytest.mark.parametrize("document", [valid_document(), signed_with_an_id()])
def test_a_checkpoint_as_nbelastic_writes_it_conforms(document):
    assert JUDGE.is_valid(document)
    assert conforms(document, SCHEMA)


@SETTINGS
@given(mutated_documents())
def test_a_damaged_checkpoint_conforms_only_if_jsonschema_accepts_it(document):
    if conforms(copy.deepcopy(document), SCHEMA):
        assert JUDGE.is_valid(document)


@SETTINGS
@given(json_values)
def test_any_json_value_conforms_only_if_jsonschema_accepts_it(value):
    if conforms(value, SCHEMA):
        assert JUDGE.is_valid(value)


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        ({"type": "integer"}, True),
        ({"const": 1}, True),
        ({"enum": ["a"]}, ["a"]),
        ({"type": ["string", "null"], "pattern": "^a$"}, "b"),
        ({"properties": {"a": {"type": "string"}}}, {"a": 1}),
        ({"required": ["a"]}, {"b": 1}),
        ({"additionalProperties": False, "properties": {"a": {}}}, {"a": 1, "b": 2}),
        ({"propertyNames": {"minLength": 2}}, {"a": 1}),
        ({"items": {"exclusiveMinimum": 0}}, [1, 0]),
        ({"$ref": "#/$defs/n", "$defs": {"n": {"minimum": 1}}}, 0),
    ],
)
def test_each_keyword_rejects_what_json_schema_rejects(schema, value):
    assert not jsonschema.Draft202012Validator(schema).is_valid(value)
    assert not conforms(value, schema)


def test_a_keyword_it_does_not_implement_is_refused():
    with pytest.raises(UnsupportedSchemaError, match="'maxLength'"):
        conforms("abc", {"maxLength": 2})
