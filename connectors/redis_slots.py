"""Where keys live on a Redis Cluster, and Lua scripts run one call per slot.

A Redis Cluster serves a script only if every key it touches is declared in KEYS and all of them
hash to one slot. Keys that meet in one script share a hash tag: the part of the name between the
first `{` and the next `}` (`cs:{p7}:cons:sea:MB1` and `cs:{p7}:cons:due` share the tag `p7`).
The filing path tags its keys by partition (a consignment's state: `partition_of` its linking key)
or by registration bucket (registration.py); output streams by their own names (redis_streams.py).

`SlotScript` runs a batch of calls of one script, one per slot, in one pipeline: one round trip
to a single Redis, one per node of a cluster (redis-py writes a cluster pipeline's commands to
every node before reading the replies). The same keys on a single Redis: tags are only names there.
"""
from __future__ import annotations

import zlib
from typing import Sequence

import redis
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
        """Replies of each (keys, args) call, in order; all sent in one pipeline."""
        if len(calls) <= 1:
            return [self(k, a) for k, a in calls]
        replies = self._send(calls)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:  # a node that never saw it (a replica promoted since, a flushed cache): load, send those again
            self._client.script_load(self._script.script)
            for i, reply in zip(missing, self._send([calls[i] for i in missing])):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _send(self, calls) -> list:
        pipe = self._client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(self._script.sha, len(keys), *keys, *args)
        return pipe.execute(raise_on_error=False)
