"""Where keys live on a Redis Cluster, and Lua scripts run one call per slot.

A Redis Cluster serves a script only if every key it touches is declared in KEYS and all of them
hash to one slot. Keys that meet in one script share a hash tag: the part of the name between the
first `{` and the next `}` (`cs:{p7}:cons:sea:MB1` and `cs:{p7}:cons:due` share the tag `p7`).
The filing path tags its keys by partition (a consignment's state: `partition_of` its linking key)
or by registration bucket (registration.py); output streams by their own names (redis_streams.py).

`SlotScript` runs a batch of calls of one script, one per slot, pipelined: one round trip to a
single Redis, one per master of a cluster (redis-py's cluster pipeline refuses EVALSHA, so each
master's calls go in a pipeline of its own connection). On a single Redis tags are only names.
The filing path, the container store and party history run their scripts with it, so on a cluster
each of their batches waits for a replica (WAIT) and survives a master's failover alike.
"""
from __future__ import annotations

import time
import zlib
from typing import Sequence

import redis
from redis.exceptions import NoScriptError

from cargoscreen.connectors.redis_store import is_cluster


def partition_of(name: str, partitions: int) -> int:
    """The partition of a consignment (by its linking key, or a filing's routing name)."""
    return zlib.crc32(name.encode()) % partitions if partitions > 1 else 0


def partition_tag(partition: int) -> str:
    return f"{{p{partition}}}"


# On a cluster: how long a batch of script calls waits for a replica of each master to have its
# writes (WAIT), so that a master killed right after answering does not take them along (an MRN handed
# out twice, an answer written and acknowledged but gone); and how often a call is sent again while
# its slot moves to a promoted replica (cluster-node-timeout plus the election: seconds).
REPLICA_WAIT_MS = 100
FAILOVER_ATTEMPTS, FAILOVER_PAUSE_SECONDS = 40, 0.25


class SlotScript:
    """A Lua script whose every call declares its keys, all in one slot; `run` sends many calls at once."""

    def __init__(self, client: redis.Redis, source: str):
        self._client = client
        self._script = client.register_script(source)
        self._cluster = is_cluster(client)

    def __call__(self, keys: Sequence, args: Sequence):
        return self.run([(keys, args)])[0]

    def run(self, calls: Sequence[tuple[Sequence, Sequence]]) -> list:
        """Replies of each (keys, args) call, in order; all sent at once (per master of a cluster).

        A call a node did not take (its script not loaded there, its slot moved in a failover, the
        node gone) is sent again once the client has the cluster's new map; the scripts are
        idempotent, so a call that ran before its node went away is harmless run twice."""
        if not self._cluster and len(calls) == 1:
            return [self._script(keys=list(calls[0][0]), args=list(calls[0][1]))]
        replies: list = [None] * len(calls)
        todo = list(range(len(calls)))
        for _ in range(FAILOVER_ATTEMPTS):
            failed = []
            for client, indexes in self._by_node(calls, todo):
                try:
                    sent = self._send(client, [calls[i] for i in indexes])
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    if not self._cluster:
                        raise  # one Redis away: the caller's retries (redis_store.with_retries)
                    sent = [exc] * len(indexes)
                for i, reply in zip(indexes, sent):
                    if isinstance(reply, NoScriptError):  # a replica promoted since, a flushed cache
                        client.script_load(self._script.script)
                    if isinstance(reply, NoScriptError) or _elsewhere(reply):
                        failed.append(i)
                    replies[i] = reply
            if not failed:
                break
            todo = failed
            if self._cluster:
                time.sleep(FAILOVER_PAUSE_SECONDS)
                try:
                    self._client.nodes_manager.initialize()  # the slots' masters as the cluster now says
                except redis.RedisError:
                    pass  # still electing: the next attempt tells
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _by_node(self, calls, todo: list) -> list:
        """(a plain client, the indexes of its calls): the client for a single Redis, one per master of a cluster."""
        if not self._cluster:
            return [(self._client, todo)]
        nodes: dict[str, tuple] = {}
        for i in todo:
            node = self._client.get_node_from_key(calls[i][0][0])
            nodes.setdefault(node.name, (self._client.get_redis_connection(node), []))[1].append(i)
        return list(nodes.values())

    def _send(self, client: redis.Redis, calls) -> list:
        pipe = client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(self._script.sha, len(keys), *keys, *args)
        if self._cluster:  # on the same connection as the writes: WAIT counts that connection's
            pipe.execute_command("WAIT", 1, REPLICA_WAIT_MS)
        replies = pipe.execute(raise_on_error=False)
        return replies[:len(calls)]


def _elsewhere(reply) -> bool:
    """A reply that says the call did not run there: the slot is elsewhere now, or its node is gone."""
    if isinstance(reply, (redis.ConnectionError, redis.TimeoutError)):
        return True
    return isinstance(reply, redis.ResponseError) and str(reply).split(" ", 1)[0] in (
        "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN")
