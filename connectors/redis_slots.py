"""Where keys live on a Redis Cluster, and Lua scripts run one call per slot.

A Redis Cluster serves a script only if every key it touches is declared in KEYS and all of them
hash to one slot. Keys that meet in one script share a hash tag: the part of the name between the
first `{` and the next `}` (`cs:{p7}:cons:sea:MB1` and `cs:{p7}:cons:due` share the tag `p7`).
The filing path tags its keys by partition (a consignment's state: `partition_of` its linking key)
or by registration bucket (registration.py); output streams by their own names (redis_streams.py).

`SlotScript` runs a batch of calls of one script, one per slot, pipelined: one round trip to a
single Redis, one per master of a cluster (redis-py's cluster pipeline refuses EVALSHA, so each
master's calls go in a pipeline of its own connection). On a single Redis tags are only names.
"""
from __future__ import annotations

import zlib
from typing import Sequence

import redis
import redis.cluster
from redis.exceptions import NoScriptError


def partition_of(name: str, partitions: int) -> int:
    """The partition of a consignment (by its linking key, or a filing's routing name)."""
    return zlib.crc32(name.encode()) % partitions if partitions > 1 else 0


def partition_tag(partition: int) -> str:
    return f"{{p{partition}}}"


def tag_of(key: str) -> str | None:
    """The hash tag of a key as Redis reads it (None: the whole name is hashed)."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1:end] if start >= 0 and end > start + 1 else None


def beside(key: str, suffix: str) -> str:
    """A key in the same slot as `key`: `key` itself as the tag when it has none."""
    return f"{key}:{suffix}" if tag_of(key) else f"{{{key}}}:{suffix}"


class SlotScript:
    """A Lua script whose every call declares its keys, all in one slot; `run` sends many calls at once."""

    def __init__(self, client: redis.Redis, source: str):
        self._client = client
        self._script = client.register_script(source)

    def __call__(self, keys: Sequence, args: Sequence):
        return self._script(keys=list(keys), args=list(args))

    def run(self, calls: Sequence[tuple[Sequence, Sequence]]) -> list:
        """Replies of each (keys, args) call, in order; all sent at once (per node of a cluster).

        A call a node did not take (its script not loaded there, its slot moved in a failover, the node
        gone) is sent again on its own through the client, which follows the cluster: the scripts this
        runs are idempotent, so a call that did run before its node went away is harmless run twice."""
        if len(calls) <= 1:
            return [self(k, a) for k, a in calls]
        replies: list = [None] * len(calls)
        for node, indexes in self._by_node(calls):
            try:
                sent = self._send(node, [calls[i] for i in indexes])
            except (redis.ConnectionError, redis.TimeoutError):
                sent = [None] * len(indexes)
            for i, reply in zip(indexes, sent):
                replies[i] = reply
        for i, reply in enumerate(replies):
            if reply is None or isinstance(reply, (NoScriptError, redis.ResponseError)) and _retry(reply):
                replies[i] = self(*calls[i])
            elif isinstance(reply, Exception):
                raise reply
        return replies

    def _by_node(self, calls) -> list:
        """(a plain client, the indexes of its calls): one for a single Redis, one per master of a cluster."""
        if not isinstance(self._client, redis.cluster.RedisCluster):
            return [(self._client, list(range(len(calls))))]
        nodes: dict[str, tuple] = {}
        for i, (keys, _) in enumerate(calls):
            node = self._client.get_node_from_key(keys[0])
            nodes.setdefault(node.name, (self._client.get_redis_connection(node), []))[1].append(i)
        return list(nodes.values())

    def _send(self, client: redis.Redis, calls) -> list:
        pipe = client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(self._script.sha, len(keys), *keys, *args)
        return pipe.execute(raise_on_error=False)


def _retry(error: redis.ResponseError) -> bool:
    """A reply that says the call did not run there: no script loaded, or the slot is elsewhere now."""
    return isinstance(error, NoScriptError) or str(error).split(" ", 1)[0] in ("MOVED", "ASK", "TRYAGAIN",
                                                                            "CLUSTERDOWN", "MASTERDOWN")
