"""The CLI finds command modules by itself and turns configuration errors into one line and exit 2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import rlsizer.commands
from rlsizer.cli import main

COMMAND = """
from rlsizer.stack.processes import StackError


def register(subparsers):
    p = subparsers.add_parser("zzdemo", help="demo")
    p.add_argument("--fail", action="store_true")
    p.add_argument("--raise", dest="raise_", default="")
    p.set_defaults(func=run)


def run(args, settings):
    if args.fail:
        raise StackError("tansu (Kafka): port 127.0.0.1:1 is already in use")
    if args.raise_ == "manifest":
        from models.manifest import ManifestError
        raise ManifestError("version must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$, got '../../etc'")
    if args.raise_ == "kafka":
        from confluent_kafka import KafkaError, KafkaException
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Connection refused"))
    if args.raise_ == "directory":
        open("/", "w")
    if args.raise_ == "bug":
        raise ZeroDivisionError("a bug")
    print("partitions", settings.topic_partitions, "kafka_log_level", settings.kafka_log_level)
    return 7
"""


@pytest.fixture
def extra_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "zzdemo.py").write_text(COMMAND)
    (tmp_path / "zzbroken.py").write_text("raise ImportError('no such thing')\n")
    monkeypatch.setattr(rlsizer.commands, "__path__", [*rlsizer.commands.__path__, str(tmp_path)])
    yield tmp_path
    for name in ("rlsizer.commands.zzdemo", "rlsizer.commands.zzbroken"):
        sys.modules.pop(name, None)


def test_a_dropped_in_module_becomes_a_command_with_settings_from_env(extra_commands, monkeypatch, capsys):
    monkeypatch.setenv("RLSIZER_TOPIC_PARTITIONS", "3")
    assert main(["zzdemo"]) == 7
    out, err = capsys.readouterr()
    assert "partitions 3" in out
    assert "zzbroken" in err and "no such thing" in err  # a broken module is named, the rest still work


def test_stack_and_settings_errors_are_one_line_and_exit_2(extra_commands, monkeypatch, capsys):
    assert main(["zzdemo", "--fail"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == "rlsizer zzdemo: tansu (Kafka): port 127.0.0.1:1 is already in use"
    monkeypatch.setenv("RLSIZER_TOPIC_PARTITIONS", "many")
    assert main(["zzdemo"]) == 2
    assert "RLSIZER_TOPIC_PARTITIONS='many' is not a valid int" in capsys.readouterr().err


def test_no_command_prints_help_and_exit_2(capsys):
    assert main([]) == 2
    assert "up" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kind", "line"),
    [
        (
            "manifest",
            "rlsizer zzdemo: ManifestError: version must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$, got '../../etc'",
        ),
        ("kafka", "rlsizer zzdemo: Kafka: Connection refused"),
        ("directory", "rlsizer zzdemo: IsADirectoryError: [Errno 21] Is a directory: '/'"),
    ],
)
def test_operational_errors_are_one_line_and_exit_1(extra_commands, capsys, kind, line):
    """An outside audit met 19-30 line tracebacks for a bad model name, a dead broker, a directory as report path."""
    assert main(["zzdemo", "--raise", kind]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == line  # after the broken module's line


def test_a_bug_keeps_its_traceback(extra_commands):
    with pytest.raises(ZeroDivisionError):
        main(["zzdemo", "--raise", "bug"])


def test_one_shot_commands_silence_librdkafka_unless_asked_and_services_keep_it(extra_commands, monkeypatch, capsys):
    """A broker down made replay, train and backtest print ~2,300 librdkafka lines before their one line."""
    from rlsizer.cli import build_parser

    assert main(["zzdemo"]) == 7
    assert "kafka_log_level 0" in capsys.readouterr().out
    monkeypatch.setenv("RLSIZER_KAFKA_LOG_LEVEL", "7")  # asked for: librdkafka's debug log
    assert main(["zzdemo"]) == 7
    assert "kafka_log_level 7" in capsys.readouterr().out
    import argparse

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    services = {"up", "worker", "monitor", "trainer", "demo"}
    assert {name for name, sub in commands.items() if sub.get_default("kafka_logs")} == services


@pytest.mark.parametrize(
    ("value", "words"),
    [("0", "must be at least 1, got 0"), ("-3", "must be at least 1, got -3"), ("many", "not a whole number: 'many'")],
)
def test_backtest_bootstrap_must_be_a_positive_count(value, words, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["backtest", "--from", "2024-01-01", "--to", "2024-02-01", "--bootstrap", value])
    assert caught.value.code == 2
    assert f"argument --bootstrap: {words}" in capsys.readouterr().err
