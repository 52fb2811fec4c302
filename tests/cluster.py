"""A distributed-backend cluster on loopback: one redis-server and N `emoji-bot replica` processes, started
and stopped together. tests/bot/test_distributed.py and bench/bot_load.py --backend arq use it."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bot.config import BackendConfig
from bot.remote import replica_key
from tests.support import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(poll)


def rss_mib(pid: int) -> float:
    """Resident memory of one process (Linux /proc), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class LocalCluster:
    """``with LocalCluster(folder, replicas=2) as cluster:`` Redis and the replicas up, torn down after.

    ``settings`` is the [backend] section bots use to reach it; each replica reads ``config.toml`` in
    ``folder`` (written here) and logs to ``replica-N.log`` there.
    """

    def __init__(
        self,
        folder: Path,
        *,
        replicas: int = 2,
        job_timeout_s: float = 6.0,
        replica_jobs: int = 8,
        max_batch: int = 8,
        threads: int | None = None,  # torch threads per replica (None: torch's default)
        start_timeout_s: float = 180.0,
    ) -> None:
        self.folder = Path(folder)
        self.replica_count = replicas
        self.threads = threads
        self.start_timeout_s = start_timeout_s
        self.port = free_port()
        self.settings = BackendConfig(
            kind="arq",
            redis_url=f"redis://127.0.0.1:{self.port}/0",
            queue_name=f"cluster-{os.getpid()}-{self.port}",
            job_timeout_s=job_timeout_s,
            replica_jobs=replica_jobs,
        )
        self.config_path = self.folder / "config.toml"
        self.config_path.write_text(
            f'device = "cpu"\nmax_batch = {max_batch}\nbatch_wait_ms = 5\nlog_level = "INFO"\n[backend]\n'
            + "".join(
                f"{key} = {json.dumps(value)}\n" for key, value in dataclasses.asdict(self.settings).items()
            ),
            encoding="utf-8",
        )
        self.redis: subprocess.Popen | None = None
        self.replicas: list[subprocess.Popen] = []
        self.started_s = 0.0  # Redis answering and every replica announced, from start()

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise FileNotFoundError("redis-server is not installed (scripts/test.sh installs Debian's)")
        began = time.perf_counter()
        self.redis = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.folder,
            stdout=(self.folder / "redis.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_until(self._redis_up, 30, "redis-server answering")
        for _ in range(self.replica_count):
            self.start_replica()
        wait_until(
            self._all_live, self.start_timeout_s, f"{self.replica_count} replicas announcing", poll=0.1
        )
        self.started_s = time.perf_counter() - began

    def start_replica(self) -> subprocess.Popen:
        env = dict(os.environ)
        if self.threads is not None:
            env["OMP_NUM_THREADS"] = str(self.threads)
        log = (self.folder / f"replica-{len(self.replicas)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(self.config_path), "replica"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.replicas.append(process)
        return process

    def stop(self) -> None:
        """SIGTERM the replicas (their jobs go back on the queue), then Redis; SIGKILL what lingers."""
        for process in self.replicas:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        if self.redis is not None and self.redis.poll() is None:
            for process in self.replicas:
                _wait_or_kill(process)
            self.redis.terminate()
        for process in [*self.replicas, *([self.redis] if self.redis else [])]:
            _wait_or_kill(process)

    # ----------------------------------------------------------------- looking at it

    def client(self):
        import redis

        return redis.Redis.from_url(self.settings.redis_url)

    def live_replicas(self) -> list[str]:
        """The replicas announced in Redis, as host:pid."""
        with self.client() as client:
            prefix = replica_key(self.settings.queue_name, "")
            return [
                key.decode()[len(prefix) :]
                for key in client.scan_iter(match=replica_key(self.settings.queue_name))
            ]

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.folder.glob("*.log"))
        )

    def _redis_up(self) -> bool:
        import redis

        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False

    def _all_live(self) -> bool:
        for process in self.replicas:
            if process.poll() is not None:
                raise RuntimeError(f"a replica exited with {process.returncode}\n{self.logs()}")
        return len(self.live_replicas()) >= self.replica_count


def _wait_or_kill(process: subprocess.Popen, timeout: float = 20) -> None:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
