"""The embedded stack: SeaweedFS (S3), tansu (Kafka) on it, topics, schema registry, models bucket.

``EmbeddedStack`` is used by ``rlsizer up`` and by the test session alike, so the
tests run on exactly what users run. Stopping is idempotent and always stops every
server that was started, in reverse order.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from confluent_kafka.admin import AdminClient

from config.settings import Settings
from rlsizer.stack.processes import (
    HOST,
    ManagedProcess,
    SeaweedPorts,
    StackError,
    free_port,
    require_free,
    spawn,
    start_seaweed,
    start_tansu,
    wait_ready,
)
from streams.codec_factory import make_codec
from streams.dir_lock import DirInUse, DirLock
from streams.topics import TOPIC_FOR_EVENT, ensure_topics, new_topics, topic_name

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

    def all(self) -> list[tuple[str, int]]:
        """Every (server, port) the stack listens on, for checking them before starting anything."""
        return [("tansu (Kafka)", self.kafka), ("schema registry", self.registry)] + [
            (f"seaweedfs {name}", port) for name, port in self.seaweed.all()
        ]


def register_event_schemas(settings: Settings) -> None:
    """Register every event's schema under its topic's subject (``<topic>-value``), so that a client
    that only looks schemas up (a Confluent serializer with ``auto.register.schemas`` off and
    ``use.latest.version`` on) finds them before anything has been published. Idempotent."""
    codec = make_codec(settings)
    for event_type in TOPIC_FOR_EVENT:
        codec.schema_id(topic_name(settings, event_type), event_type)


def start_registry(*, port: int, kafka_bootstrap: str, log_dir: Path, timeout: float = 60.0) -> ManagedProcess:
    """The schema registry (``rlsizer.registry.server``) as a child process, ready when it answers HTTP."""
    require_free("schema registry", port)
    args = [
        sys.executable,
        "-m",
        "rlsizer.registry.server",
        "--bootstrap",
        kafka_bootstrap,
        "--port",
        str(port),
        "--host",
        HOST,
    ]
    root = str(Path(__file__).resolve().parent.parent)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH", "")]))}
    proc = spawn("schema registry", args, log_dir / "registry.log", env)
    wait_ready(proc, lambda: _registry_answers(port), timeout, f"answer HTTP on {HOST}:{port}")
    return proc


def _registry_answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=1)
        conn.request("GET", "/")
        return conn.getresponse().status == 200
    except OSError:
        return False


def ensure_bucket(settings: Settings, bucket: str) -> None:
    """Create ``bucket`` on the stack's S3 unless it exists."""
    import boto3  # lazy: loads boto3 only when used
    from botocore.exceptions import BotoCoreError, ClientError  # lazy: loads boto3 only when used

    s3 = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
    )
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise StackError(f"seaweedfs: cannot create bucket {bucket!r}: {exc}") from exc
    except BotoCoreError as exc:
        raise StackError(f"seaweedfs: cannot create bucket {bucket!r}: {exc}") from exc


class DataDirLock:
    """An exclusive lock on a data dir, so two stacks never share one SeaweedFS directory."""

    def __init__(self, data_dir: Path) -> None:
        self._lock = DirLock(data_dir, holder="another stack")
        self.path = self._lock.path

    def acquire(self) -> None:
        try:
            self._lock.acquire()
        except DirInUse as exc:
            raise StackError(f"data dir {exc}") from None

    def release(self) -> None:
        self._lock.release()


class EmbeddedStack:
    def __init__(
        self, data_dir: Path, *, ports: StackPorts | None = None, memory: bool = False, base: Settings | None = None
    ) -> None:
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
        self._lock = DataDirLock(self.data_dir)

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def start(self) -> EmbeddedStack:
        try:
            s = self.settings
            self._lock.acquire()
            for name, port in self.ports.all():
                require_free(name, port)
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
            self.processes.append(
                start_registry(port=self.ports.registry, kafka_bootstrap=s.kafka_bootstrap, log_dir=self.log_dir)
            )
            register_event_schemas(s)
            ensure_bucket(s, s.s3_bucket)
        except BaseException:
            self.stop()
            raise
        return self

    def check_alive(self) -> None:
        for proc in self.processes:
            if not proc.alive():
                raise StackError(
                    f"{proc.name} stopped unexpectedly (code {proc.popen.returncode}); log {proc.log_path}:\n{proc.log_tail()}"
                )

    def stop(self) -> None:
        while self.processes:
            proc = self.processes.pop()
            with contextlib.suppress(Exception):
                proc.stop()
        self._lock.release()

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
