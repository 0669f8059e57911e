"""The Node.js example bot (examples/node: kafkajs + @kafkajs/confluent-schema-registry, no rlsizer
code) against the embedded stack and a real worker: what a bot in another language sees.

``npm ci`` runs here (it needs the npm registry) unless the example's node_modules already holds
what package-lock.json pins. A missing node or npm is a failure with the install hint, never a skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from config.settings import Settings
from rlsizer.stack.processes import free_port
from rlsizer.stack.services import start_worker
from streams.partitioner import partition_for
from streams.topics import ensure_topics, new_topics

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "node"
NODE_MAJOR = 18
INSTALL_HINT = "install Node.js 20 and npm (Debian/Ubuntu: apt-get install nodejs npm; see examples/node/README.md)"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: {INSTALL_HINT}", pytrace=False)
    return path


@pytest.fixture(scope="module")
def node() -> str:
    node = _tool("node")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < NODE_MAJOR:
        pytest.fail(f"node {version} is too old (>= {NODE_MAJOR} needed): {INSTALL_HINT}", pytrace=False)
    npm = _tool("npm")
    lock = (EXAMPLE / "package-lock.json").read_bytes()
    stamp = EXAMPLE / "node_modules" / ".rlsizer-lock-sha256"
    digest = hashlib.sha256(lock).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:  # what package-lock.json pins is not installed yet
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=EXAMPLE, capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0:
            pytest.fail(
                f"npm ci in {EXAMPLE} failed (it needs the npm registry):\n{done.stdout}\n{done.stderr}", pytrace=False
            )
        stamp.write_text(digest)
    return node


@pytest.fixture
def nsettings(settings: Settings, tmp_path: Path) -> Settings:
    s = replace(
        settings,
        topic_prefix=f"node{uuid.uuid4().hex[:8]}",
        topic_partitions=4,
        worker_web_port=free_port(),
        data_dir=tmp_path,
    )
    ensure_topics(AdminClient(s.kafka_config()), new_topics(s, include_schemas=False))
    return s


def test_kafkajs_default_partitioner_is_kafkas_murmur2(node: str) -> None:
    """kafkajs 2's DefaultPartitioner puts every key where the worker expects it (Kafka's murmur2, as Java)."""
    rng = random.Random(22)
    keys = ["AAPL", "MSFT", "EUR/USD", "BTC-USDT", "", "Ünïcødé", "日本株"]
    keys += ["".join(chr(rng.randrange(32, 0x2FF)) for _ in range(rng.randrange(1, 24))) for _ in range(500)]
    script = (
        "const { Partitioners } = require('kafkajs');"
        "const p = Partitioners.DefaultPartitioner();"
        "const keys = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "const out = {};"
        "for (const n of [1, 2, 3, 4, 6, 12, 100]) {"
        "  const meta = [...Array(n).keys()].map(i => ({ partitionId: i, leader: 0 }));"
        "  out[n] = keys.map(key => p({ topic: 't', partitionMetadata: meta, message: { key, value: null } }));"
        "}"
        "console.log(JSON.stringify(out));"
    )
    done = subprocess.run(
        [node, "-e", script],
        cwd=EXAMPLE,
        input=json.dumps(keys),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    got = json.loads(done.stdout)
    for n, partitions in got.items():
        expected = [partition_for(key.encode(), int(n)) for key in keys]
        wrong = [(k, p, e) for k, p, e in zip(keys, partitions, expected, strict=True) if p != e]
        assert not wrong, f"{len(wrong)} of {len(keys)} keys on another partition among {n}: {wrong[:5]}"


def test_node_bot_session_against_a_worker(node: str, nsettings: Settings) -> None:
    """bars, signals -> decisions that saw the bars; a re-sent signal -> the identical decision; entry and
    exit fills -> TradeClosed; an unknown strategy, a NaN and a negative price, a wrong partition -> dead letters."""
    s = nsettings
    env = {
        **os.environ,
        "RLSIZER_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
        "RLSIZER_REGISTRY_URL": s.registry_url,
        "RLSIZER_TOPIC_PREFIX": s.topic_prefix,
        "BOT_TIMEOUT_S": "60",
    }
    worker = start_worker(s, worker_id="node")
    try:
        done = subprocess.run([node, "bot.js"], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=90)
    finally:
        worker.stop()
    out = done.stdout
    print(out)
    assert done.returncode == 0, f"the Node bot failed (exit {done.returncode}):\n{out}\n{done.stderr[-4000:]}"
    lines = out.splitlines()
    assert sum(line.startswith("ok ") for line in lines) >= 15 and not any(line.startswith("FAIL") for line in lines), (
        out
    )
    for kind in ("unknown_strategy", "invalid_value", "wrong_partition"):
        assert any(line.startswith("ok ") and kind in line for line in lines), f"no {kind} dead letter checked:\n{out}"
    result = json.loads(next(line for line in lines if line.startswith("RESULT ")).removeprefix("RESULT "))
    assert len(result["partitions"]) == 4
    for symbol, partitions in result["partitions"].items():
        assert partitions == [partition_for(symbol.encode(), s.topic_partitions)], (symbol, partitions)
