"""The crash contract on the embedded broker: every signal gets exactly one decision through SIGKILLs,
a worker joining and one leaving, with many symbols fed at a steady rate and some signals re-sent
(``rlsizer.drill``; ``rlsizer drill`` runs the long soak)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from rlsizer.drill import Action, DrillPlan, run_drill
from rlsizer.stack.embedded import EmbeddedStack, StackPorts
from streams.codec_factory import make_codec
from streams.topics import ensure_topics, new_topics

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mem_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(tmp_path_factory.mktemp("drill-stack"), ports=StackPorts.free(), memory=True) as running:
        yield running


def test_every_signal_decided_once_through_kills_a_join_and_a_leave(mem_stack: EmbeddedStack, tmp_path: Path):
    s = replace(
        mem_stack.settings,
        topic_prefix=f"d{uuid.uuid4().hex[:8]}",
        topic_partitions=6,
        worker_web_port=0,
        data_dir=tmp_path,
    )
    ensure_topics(AdminClient(s.kafka_config()), new_topics(s, include_schemas=False))
    plan = DrillPlan(
        symbols=12,
        signals=3000,
        rate=200.0,
        settle_s=40.0,
        actions=(
            Action(0.15, "kill", "0"),
            Action(0.30, "join", "2"),
            Action(0.50, "kill", "0"),
            Action(0.65, "leave", "2"),
            Action(0.80, "kill", "1"),
        ),
    )
    lines: list[str] = []
    report = run_drill(s, make_codec(s), plan, say=lines.append)
    print("\n".join(lines), report.summary(), sep="\n")
    logs = "\n".join(p.read_text()[-2500:] for p in (tmp_path / "logs").glob("worker-*.log"))
    assert report.signals == 3000 and report.kills == 3 and report.joins == 1 and report.leaves == 1
    assert report.lost == 0, f"{report.summary()}\nfirst lost: {report.lost_ids}\n{logs}"
    assert report.conflicting == 0, report.summary()
    assert report.decided == report.signals, report.summary()  # none of these is bad input
    assert report.duplicates >= report.resent  # a re-sent signal gets its decision again
