"""The registry's rules without a server: ids, versions, compatibility, log replay."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlsizer.registry.state import (
    LogRecord,
    RegistryError,
    RegistryState,
    canonical_key,
    config_record,
    schema_tombstone,
)


def record(*fields: dict) -> str:
    return json.dumps({"type": "record", "name": "T", "namespace": "t", "fields": list(fields)})


V1 = record({"name": "a", "type": "string"})
V2_DEFAULT = record({"name": "a", "type": "string"}, {"name": "b", "type": "int", "default": 0})
V2_NO_DEFAULT = record({"name": "a", "type": "string"}, {"name": "b", "type": "int"})


def register(state: RegistryState, subject: str, text: str) -> tuple[int, int]:
    version, rec = state.plan_registration(subject, text)
    if rec is not None:
        state.apply(rec)
    return version.schema_id, version.version


def test_same_schema_gets_one_id_across_subjects_and_whitespace():
    state = RegistryState()
    assert register(state, "a-value", V1) == (1, 1)
    assert register(state, "b-value", json.dumps(json.loads(V1), indent=4)) == (1, 1)
    assert register(state, "a-value", V1) == (1, 1)
    assert register(state, "a-value", V2_DEFAULT) == (2, 2)


def test_backward_refuses_a_field_without_default_with_409():
    state = RegistryState()
    register(state, "s", V1)
    with pytest.raises(RegistryError) as err:
        state.plan_registration("s", V2_NO_DEFAULT)
    assert (err.value.status, err.value.error_code) == (409, 409)
    assert "reader_field_missing_default_value" in err.value.message
    state.apply(config_record("s", "NONE"))
    assert register(state, "s", V2_NO_DEFAULT) == (2, 2)


def test_forward_refuses_removing_a_field_without_default():
    state = RegistryState()
    state.apply(config_record(None, "FORWARD"))
    register(state, "s", V2_NO_DEFAULT)
    with pytest.raises(RegistryError):
        state.plan_registration("s", V1.replace('"a"', '"c"'))


@pytest.mark.parametrize(("level", "accepted"), [("FORWARD", True), ("FORWARD_TRANSITIVE", False)])
def test_transitive_checks_every_version_not_only_the_latest(level, accepted):
    v1 = record({"name": "a", "type": "string"})
    v2 = record({"name": "a", "type": "string", "default": "x"}, {"name": "b", "type": "int", "default": 1})
    v3 = record({"name": "b", "type": "int", "default": 1})  # v2 reads it (a has a default), v1 cannot
    state = RegistryState()
    state.apply(config_record(None, level))
    register(state, "s", v1)
    register(state, "s", v2)
    assert state.check("s", v3, "2") == []
    assert state.check("s", v3, "1") != []
    if accepted:
        assert register(state, "s", v3) == (3, 3)
    else:
        with pytest.raises(RegistryError) as err:
            state.plan_registration("s", v3)
        assert "version 1 cannot read" in err.value.message


def test_invalid_schema_is_42201():
    with pytest.raises(RegistryError) as err:
        RegistryState().plan_registration("s", '{"type": "record", "name": "T"}')
    assert err.value.error_code == 42201


def test_replay_rebuilds_ids_versions_deletes_and_config():
    live = RegistryState()
    log: list[LogRecord] = []
    for subject, text in [("a", V1), ("a", V2_DEFAULT), ("b", V1)]:
        _version, rec = live.plan_registration(subject, text)
        assert rec is not None
        live.apply(rec)
        log.append(rec)
    log += [config_record("a", "FULL"), schema_tombstone("b", 1)]
    replayed = RegistryState()
    for rec in log:
        replayed.apply(rec)
    assert [v.schema_id for v in replayed.versions("a")] == [1, 2]
    assert replayed.versions("b", deleted=True) == []
    assert replayed.compatibility("a") == "FULL"
    assert replayed.compatibility("b") == "BACKWARD"
    # a new schema after replay gets a fresh id, never a reused one
    assert register(replayed, "c", record({"name": "z", "type": "long"}))[0] == 3


def test_version_lookup_errors_have_confluent_codes():
    state = RegistryState()
    with pytest.raises(RegistryError) as err:
        state.version("nope", "latest")
    assert err.value.error_code == 40401
    register(state, "s", V1)
    with pytest.raises(RegistryError) as err:
        state.version("s", "7")
    assert err.value.error_code == 40402
    with pytest.raises(RegistryError) as err:
        state.version("s", "x")
    assert err.value.error_code == 42202


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "name", "doc", "namespace"]), st.text(max_size=5), min_size=1))
def test_canonical_key_ignores_key_order_and_whitespace(obj):
    reordered = dict(reversed(list(obj.items())))
    assert canonical_key(json.dumps(obj)) == canonical_key(json.dumps(reordered, indent=2))
