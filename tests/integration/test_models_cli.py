"""``rlsizer models`` against the real embedded stack."""

from __future__ import annotations

import argparse
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from models.aliases import CHAMPION
from models.registry import ModelRegistry
from rlsizer.commands.models import register
from rlsizer.stack.processes import free_port
from tests.unit.models.strategies import example_draft

pytestmark = pytest.mark.integration
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def cli_settings(settings):
    return replace(settings, model_name=f"cli-{uuid.uuid4().hex[:10]}", model_hmac_key="cli-test-signing-key-000000001")


@pytest.fixture
def registry(cli_settings):
    return ModelRegistry.from_settings(cli_settings)


def run(settings, *argv):
    parser = argparse.ArgumentParser(prog="rlsizer")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["models", *argv])
    return args.func(args, settings)


def publish(registry, n, **kwargs):
    draft = example_draft(
        run_name=f"run{n}",
        metrics={
            "holdout_return": 10.0 * n,
            "holdout_session_cvar5": -1.5 * n,
            "gate_promote": float(n == 1),
            "gate_vs_fixed_1x_required": 1.0,
        },
    )
    return registry.publish(
        f"onnx-{n}".encode(), draft, created_at=T0 + timedelta(minutes=n), **kwargs
    ).manifest.version


def test_list_shows_versions_aliases_and_metrics(cli_settings, registry, capsys):
    v1 = publish(registry, 1, alias=CHAMPION)
    v2 = publish(registry, 2)
    assert run(cli_settings, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["VERSION", "ALIAS", "CREATED", "RETURN", "SESSION_CVAR5", "VERDICT"]
    assert lines[1].split() == [v1, "champion", "2024-03-01T12:01:00Z", "+10.00", "-1.50", "promoted"]
    assert lines[2].split() == [v2, "-", "2024-03-01T12:02:00Z", "+20.00", "-3.00", "refused"]
    assert "gate_vs_fixed_1x_required" not in "\n".join(lines)  # gate internals are for `models show`


def test_list_names_a_refused_alias_and_still_lists_the_versions(cli_settings, registry, capsys):
    import json

    from models.store import alias_key

    v1 = publish(registry, 1, alias=CHAMPION)
    v2 = publish(registry, 2)
    key = alias_key(registry.model_name, CHAMPION)
    doc = json.loads(registry.store.get(key)[0])
    registry.store.client.put_object(
        Bucket=registry.store.bucket, Key=key, Body=json.dumps({**doc, "version": v2}).encode()
    )
    assert run(cli_settings, "list") == 0
    captured = capsys.readouterr()
    assert "champion alias REFUSED (tampered_alias)" in captured.err
    assert [line.split()[:2] for line in captured.out.splitlines()[1:]] == [[v1, "-"], [v2, "-"]]  # names nothing
    assert run(cli_settings, "promote", v1) == 0  # the way back, announced as usual
    assert f"champion: (alias refused: tampered_alias) -> {v1}" in capsys.readouterr().out
    assert run(cli_settings, "list") == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == [v1, "champion"]


def test_show_prints_manifest_and_flags_tampering(cli_settings, registry, capsys):
    version = publish(registry, 1)
    assert run(cli_settings, "show", version) == 0
    out = capsys.readouterr().out
    assert f'"version": "{version}"' in out and "verification: OK" in out
    registry.store.client.put_object(
        Bucket=registry.store.bucket, Key=f"models/{registry.model_name}/versions/{version}/model.onnx", Body=b"x"
    )
    assert run(cli_settings, "show", version) == 1
    assert "verification: FAILED tampered_artifact" in capsys.readouterr().out


def test_promote_and_rollback_announce_the_champion(cli_settings, registry, capsys):
    v1 = publish(registry, 1, alias=CHAMPION)
    v2 = publish(registry, 2)
    assert run(cli_settings, "promote", v2) == 0
    out = capsys.readouterr().out
    assert f"champion: {v1} -> {v2}" in out and "ModelPublished sent to" in out
    assert registry.champion() == v2
    assert run(cli_settings, "rollback", "--no-event") == 0
    assert f"rolled back: {v2} -> {v1}" in capsys.readouterr().out
    assert run(cli_settings, "rollback", "--no-event") == 1
    assert "has no previous champion" in capsys.readouterr().err
    assert registry.champion() == v1


def test_promote_with_registry_down_says_the_change_is_made_but_not_announced(cli_settings, registry, capsys):
    publish(registry, 1, alias=CHAMPION)
    v2 = publish(registry, 2)
    broken = replace(cli_settings, registry_url=f"http://127.0.0.1:{free_port()}")
    assert run(broken, "promote", v2) == 1
    err = capsys.readouterr().err
    assert "the change IS made in S3" in err
    assert f"schema registry at {broken.registry_url} unreachable" in err
    assert registry.champion() == v2


def test_s3_unreachable_is_one_clear_line(cli_settings, capsys):
    down = replace(cli_settings, s3_endpoint=f"http://127.0.0.1:{free_port()}")
    assert run(down, "list") == 1
    err = capsys.readouterr().err
    assert err.startswith("rlsizer models list: S3 at http://127.0.0.1:") and "unreachable" in err
