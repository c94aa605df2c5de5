"""Local servers start on a port that was free when chosen; when another process takes it before
the server binds it (ports chosen by one process are anyone's until bound), the server starts
on a fresh one instead of failing the run."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobq.embedded
import jobq.embedded_cluster
from jobq.embedded import BIND_TRIES, PortTaken, ServerProcess, free_port, valkey_binary
from jobq.embedded_cluster import ClusterProcess


@pytest.fixture
def taken() -> Iterator[int]:
    """A port some other process holds, listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def first_taken(monkeypatch: pytest.MonkeyPatch, module: object, port: int, times: int) -> None:
    """``free_port`` answers ``port`` for its first ``times`` calls, then really free ones."""
    answers = [port] * times

    def fake() -> int:
        return answers.pop() if answers else free_port()

    monkeypatch.setattr(module, "free_port", fake)


def test_a_server_whose_port_is_taken_meanwhile_starts_on_another(
    tmp_path: Path, taken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_taken(monkeypatch, jobq.embedded, taken, 2)
    server = ServerProcess(valkey_binary(), tmp_path / "valkey").start()
    try:
        assert server.port != taken
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            assert conn.recv(64).startswith(b"+PONG")
    finally:
        server.stop()


def test_a_port_asked_for_is_not_swapped_and_gives_up_clearly(
    tmp_path: Path, taken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(PortTaken, match=f"could not bind port {taken}"):
        ServerProcess(valkey_binary(), tmp_path / "given", port=taken).start()
    first_taken(monkeypatch, jobq.embedded, taken, BIND_TRIES)
    with pytest.raises(PortTaken):
        ServerProcess(valkey_binary(), tmp_path / "chosen").start()


def test_a_cluster_node_whose_port_is_taken_meanwhile_starts_on_another(
    tmp_path: Path, taken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_taken(monkeypatch, jobq.embedded_cluster, taken, 1)  # node 0's client port
    cluster = ClusterProcess(valkey_binary(), tmp_path / "cluster", primaries=3,
                             replicas_each=0).start()
    try:
        assert taken not in [node.port for node in cluster.nodes]
        assert "cluster_state:ok" in str(cluster.command(0, "CLUSTER", "INFO"))
    finally:
        cluster.stop()
