"""An event's payload -> the start op's config (sensors.payload_config), against the
config fields a compiled job gives its Parameters (compiler/render.py's _config_schema)."""

import logging

import pytest
from dagster import Field

from metaflow_dagster.runtime.triggers.sensors import payload_config

# One Parameter of each type, with a default and without one, as a compiled start op
# declares them (a JSON Parameter is a str field).
FIELDS = {
    "text": Field(str, default_value="default text"),
    "count": Field(int, default_value=3),
    "ratio": Field(float, default_value=0.5),
    "flag": Field(bool, default_value=True),
    "blob": Field(str, default_value='{"k": 1}'),
    "no_default": Field(str, is_required=False),
}
FIELD_TYPES = {name: field.config_type for name, field in FIELDS.items()}
PARAM_FIELDS = {name: name for name in FIELDS}
SPEC = {"name": "data_ready", "parameters": {name: "%s_value" % name for name in FIELDS}}
LOG = logging.getLogger(__name__)


def config_of(payload: dict) -> dict:
    return payload_config(SPEC, payload, PARAM_FIELDS, FIELD_TYPES, "data_ready (id)", LOG)


def test_values_are_fitted_to_each_parameter_type():
    payload = {"text_value": "t", "count_value": "7", "ratio_value": 2, "flag_value": "no",
               "blob_value": {"k": [1, 2]}, "no_default_value": "given"}
    assert config_of(payload) == {"text": "t", "count": 7, "ratio": 2.0, "flag": False,
                                  "blob": '{"k": [1, 2]}', "no_default": "given"}


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_a_null_leaves_the_parameter_at_its_default(name, caplog):
    # Alone, and beside a field that sets its parameter: the null sets nothing, never the
    # text 'null', and is no misfit worth a warning.
    assert config_of({"%s_value" % name: None}) == {}
    other = "text" if name != "text" else "count"
    given = {"text": "t", "count": 5}[other]
    assert config_of({"%s_value" % name: None, "%s_value" % other: given}) == {other: given}
    assert caplog.records == []


def test_a_null_is_what_an_absent_field_is():
    nulls = {"%s_value" % name: None for name in FIELDS}
    assert config_of(nulls) == config_of({}) == {}


def test_a_value_that_does_not_fit_is_left_out_with_a_warning(caplog):
    assert config_of({"count_value": "many", "text_value": "t"}) == {"text": "t"}
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert "data_ready (id)" in record.getMessage() and "'count'" in record.getMessage()
