"""``rlsizer topics create|list``: the topic catalogue, created explicitly and idempotently.

On a real cluster run it once per deployment (docker-compose's ``topics`` service
does); partitions and replication come from ``RLSIZER_TOPIC_PARTITIONS`` and
``RLSIZER_TOPIC_REPLICATION``; ``rlsizer.models`` and ``_schemas`` are compacted.
"""

from __future__ import annotations

import argparse
from typing import Any

from confluent_kafka.admin import AdminClient

from config.settings import Settings
from streams.topics import CATALOG, ensure_topics, new_topics


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("topics", help="create or list the rlsizer topics")
    parser.add_argument("action", choices=("create", "list"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    admin = AdminClient(settings.kafka_config())
    if args.action == "create":
        created = ensure_topics(admin, new_topics(settings, include_schemas=False))
        print(f"created {len(created)} topic(s): {', '.join(created) or 'none (all existed)'}")
        return 0
    existing = admin.list_topics(timeout=10).topics
    for spec in CATALOG:
        name = settings.topic(spec.short_name)
        meta = existing.get(name)
        state = f"{len(meta.partitions)} partitions" if meta else "MISSING"
        carries = ", ".join(t.__name__ for t in spec.event_types)
        print(f"{name:<28} {state}{'  (compacted)' if spec.compacted else ''}  {carries}")
    return 0
