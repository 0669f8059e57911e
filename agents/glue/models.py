"""Model hot swap: every worker follows the compacted ``models`` topic and swaps its policy.

The ``models`` topic has one partition and must reach *every* worker, so it is
read by a plain consumer with ``assign`` (no group), not by a Faust agent (a
group would hand it to one worker only). Loading and verification run in this
watcher's thread, off the hot path; ``slot.swap(policy)`` is atomic.
``load_model(event) -> policy`` is injected (verification lives in ``models/``);
the default loads a local ONNX file named by ``artifact_uri`` (path or ``file://``).
A loader that finds the announcement changes nothing (``ModelUnchanged``: an old
announcement read again, or the model it names is already served) is not an error:
nothing is swapped and nothing is dead-lettered. Any other failure keeps the current
policy and dead-letters the announcement.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from agents.glue.registry_wait import call_once_registry_answers
from config.settings import Settings
from schemas.codec import DecodeError, EventCodec
from schemas.events import ModelPublished
from streams.dead_letter import dead_letter
from streams.producer import EventProducer

log = logging.getLogger(__name__)

LoadModel = Callable[[ModelPublished], Any]


class ModelLoadError(RuntimeError):
    """A published model cannot be loaded; the current policy stays in place."""


class ModelUnchanged(Exception):
    """The announcement changes nothing (not an error): the current policy stays, nothing is dead-lettered."""


def local_artifact_path(event: ModelPublished) -> Path:
    uri = urlparse(event.artifact_uri)
    if uri.scheme not in ("", "file"):
        raise ModelLoadError(
            f"model {event.model_name} {event.version}: artifact {event.artifact_uri!r} is not a local file; "
            "run the worker with the registry loader (models/) to fetch and verify remote artifacts"
        )
    path = Path(uri.path)
    if not path.is_file():
        raise ModelLoadError(f"model {event.model_name} {event.version}: {path} does not exist")
    return path


def default_load_model(event: ModelPublished) -> Any:
    from agents.features import FEATURE_NAMES, FEATURE_SET  # lazy: loads ta-lib only when used
    from agents.sizing import load_policy  # lazy: loads onnxruntime, onnx only when used

    if event.feature_set != FEATURE_SET:
        raise ModelLoadError(
            f"model {event.version} was trained on feature set {event.feature_set!r}; serving {FEATURE_SET!r}"
        )
    return load_policy(local_artifact_path(event), feature_names=FEATURE_NAMES, version=event.version)


class ModelWatcher:
    def __init__(
        self,
        settings: Settings,
        codec: EventCodec,
        *,
        consumer: Consumer,
        dlq: EventProducer,
        slot: Any,
        load_model: LoadModel,
    ) -> None:
        self._settings = settings
        self._codec = codec
        self._consumer = consumer
        self._dlq = dlq
        self._slot = slot
        self._load = load_model
        self._topic = settings.topic("models")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
        self.swapped: list[str] = []

    def start(self) -> None:
        meta = self._consumer.list_topics(self._topic, timeout=10).topics[self._topic]
        self._consumer.assign([TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                msg = self._consumer.poll(0.2)
                if msg is None or msg.error():
                    continue
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                if topic is None or partition is None or offset is None:  # consumed records have all three
                    continue
                call_once_registry_answers(  # the registry away: the record waits, neither dead-lettered nor skipped
                    partial(self.handle, topic, partition, offset, msg.key(), msg.value()),
                    self._stop,
                    "model watcher",
                )
        finally:
            self._consumer.close()

    def handle(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        try:
            event = self._codec.decode(value)
            if not isinstance(event, ModelPublished):
                raise DecodeError("wrong_schema", f"{type(event).__name__} on {topic}, which carries ModelPublished")
        except DecodeError as exc:
            self._reject(topic, partition, offset, key, value, exc.reason, exc.kind)
            return
        if event.model_name != self._settings.model_name or event.alias not in (None, "champion"):
            return
        try:
            policy = self._load(event)
        except ModelUnchanged as exc:
            log.info("model %s %s: nothing to swap (%s)", event.model_name, event.version, exc)
            return
        except Exception as exc:  # verification or load failed: keep serving the current policy
            log.error("model %s %s not loaded: %s", event.model_name, event.version, exc)
            self._reject(
                topic, partition, offset, key, value, f"model {event.version} not loaded: {exc}", "model_rejected"
            )
            return
        self._slot.swap(policy)
        self.swapped.append(event.version)
        log.info("policy swapped to %s %s", event.model_name, event.version)

    def _reject(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, reason: str, kind: str
    ) -> None:
        self._dlq.send(dead_letter(topic, partition, offset, key, value, reason, kind))
        self._dlq.flush(10)
