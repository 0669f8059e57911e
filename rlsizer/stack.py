"""The embedded stack: SeaweedFS (S3), tansu (Kafka) on it, topics created.

``EmbeddedStack`` is used by ``rlsizer up`` and by the test session alike, so the
tests run on exactly what users run. Stopping is idempotent and always stops every
server that was started, in reverse order.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from confluent_kafka.admin import AdminClient

from rlsizer.processes import HOST, ManagedProcess, SeaweedPorts, StackError, free_port, start_seaweed, start_tansu
from streams.settings import Settings
from streams.topics import ensure_topics, new_topics

KAFKA_BUCKET = "rlsizer-kafka"


@dataclass(frozen=True, slots=True, kw_only=True)
class StackPorts:
    kafka: int = 9092
    registry: int = 8081
    seaweed: SeaweedPorts = field(default_factory=SeaweedPorts)

    @classmethod
    def free(cls) -> StackPorts:
        taken: set[int] = set()
        seaweed = SeaweedPorts.free(taken)
        return cls(kafka=free_port(taken=taken), registry=free_port(taken=taken), seaweed=seaweed)


class EmbeddedStack:
    def __init__(self, data_dir: Path, *, ports: StackPorts | None = None, memory: bool = False, base: Settings | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.ports = ports or StackPorts()
        self.memory = memory
        base = base or Settings()
        self.settings = replace(
            base,
            kafka_bootstrap=f"{HOST}:{self.ports.kafka}",
            registry_url=f"http://{HOST}:{self.ports.registry}",
            s3_endpoint=f"http://{HOST}:{self.ports.seaweed.s3}",
            data_dir=self.data_dir,
        )
        self.processes: list[ManagedProcess] = []

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def start(self) -> EmbeddedStack:
        try:
            s = self.settings
            self.processes.append(
                start_seaweed(
                    self.data_dir / "s3",
                    ports=self.ports.seaweed,
                    access_key=s.s3_access_key,
                    secret_key=s.s3_secret_key,
                    bucket=KAFKA_BUCKET,
                    log_dir=self.log_dir,
                )
            )
            storage = "memory://tansu/" if self.memory else f"s3://{KAFKA_BUCKET}/"
            self.processes.append(
                start_tansu(
                    port=self.ports.kafka,
                    storage_url=storage,
                    log_dir=self.log_dir,
                    s3_endpoint=None if self.memory else s.s3_endpoint,
                    access_key=s.s3_access_key,
                    secret_key=s.s3_secret_key,
                    region=s.s3_region,
                )
            )
            admin = AdminClient(s.kafka_config())
            ensure_topics(admin, new_topics(s))
        except BaseException:
            self.stop()
            raise
        return self

    def check_alive(self) -> None:
        for proc in self.processes:
            if not proc.alive():
                raise StackError(f"{proc.name} stopped unexpectedly (code {proc.popen.returncode}); log {proc.log_path}:\n{proc.log_tail()}")

    def stop(self) -> None:
        while self.processes:
            proc = self.processes.pop()
            with contextlib.suppress(Exception):
                proc.stop()

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
